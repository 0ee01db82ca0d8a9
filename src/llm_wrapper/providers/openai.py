"""OpenAI: the reference wire format, so nothing differs."""

from .base import Provider


class OpenAIProvider(Provider):
    pass
