"""OpenAI: the reference wire format, so nothing differs; it speaks the Responses API too."""

from .base import Provider


class OpenAIProvider(Provider):
    speaks_responses = True
