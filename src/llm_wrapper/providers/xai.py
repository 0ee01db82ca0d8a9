"""xAI (Grok): OpenAI-compatible Chat Completions.

xAI removed Live Search: `search_parameters` now gets HTTP 410. Until the
Responses-API translation lands, the field is stripped with a warning so the
request still succeeds.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .base import Call, Exchange, Provider

log = logging.getLogger(__name__)


class XAIProvider(Provider):
    def prepare(self, body: dict[str, Any], exchange: Exchange) -> Call:
        body = self.merge_extra(body)
        if "search_parameters" in body:
            log.warning("xAI no longer accepts search_parameters; removed from the request")
            body = {k: v for k, v in body.items() if k != "search_parameters"}
        return Call(self.url(self.chat_path), orjson.dumps(body))
