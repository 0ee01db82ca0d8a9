"""xAI (Grok): OpenAI-compatible Chat Completions, and Live Search through the Responses API.

xAI removed Live Search: `search_parameters` now gets HTTP 410 on both
`/chat/completions` and `/responses`. Its successor is the server-side
`web_search` and `x_search` tools, which exist only on the Responses API. A
request carrying `search_parameters` (the client's, or the configured
`payload_extra_parameters`, which win) is therefore sent to `{base_url}/responses`
with the matching tools, and the answer is turned back into Chat Completions,
keeping the citations as the top-level `citations` list Live Search returned.

The Responses <-> Chat Completions translation itself is `translation/responses.py`;
this module holds only what is xAI's: when to search, and the search tools.

A `/v1/responses` request is passed through to `/responses` as it is (xAI
speaks the Responses API). `search_parameters` means nothing there, so it is
removed; when it asks for search and the client sent no `tools` of its own, the
matching `web_search` / `x_search` tools are added, as for chat. A client's own
tools win: search is then skipped, and the answer's `x-llm-wrapper-search`
header says so.

Everything else (no `search_parameters`, `mode: "off"`, or a request using the
client's own function tools, which the Responses translation does not carry)
stays plain Chat Completions with the field removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..translation.responses import ResponsesStream, responses_request, text_of, translate_answer
from .base import Call, Exchange, Provider, ResponsesCall, StreamTranslator

log = logging.getLogger(__name__)

WEB_SOURCES = {"web", "news", "rss"}
CHAT_ONLY = ("tools", "functions", "logprobs", "top_logprobs", "stop", "seed", "frequency_penalty",
             "presence_penalty", "logit_bias")
SEARCH_HEADER = "x-llm-wrapper-search"


@dataclass(slots=True)
class SearchCall(Call):
    """A chat request sent to `/responses` with search tools; `citations`: keep them in the answer."""

    citations: bool = True


class XAIProvider(Provider):
    speaks_responses = True

    def responses_call(self, body: dict[str, Any], exchange: Exchange) -> ResponsesCall:
        body = self.merge_extra(body)
        search = body.get("search_parameters")
        if search is None:
            return ResponsesCall(self.url("/responses"), orjson.dumps(body))
        body = {k: v for k, v in body.items() if k != "search_parameters"}
        if _wants_search(search) and isinstance(search, dict):
            check_search(search)
            if body.get("tools"):
                exchange.headers[SEARCH_HEADER] = "skipped: the request has its own tools"
            else:
                body["tools"] = search_tools(search)
        return ResponsesCall(self.url("/responses"), orjson.dumps(body))

    def prepare(self, body: dict[str, Any], exchange: Exchange) -> Call:
        body = self.merge_extra(body)
        search = body.get("search_parameters")
        body = {k: v for k, v in body.items() if k != "search_parameters"}
        if not _wants_search(search) or not isinstance(search, dict):
            return Call(self.url(self.chat_path), orjson.dumps(body))
        check_search(search)
        unsupported = chat_only_fields(body)
        if unsupported:
            # Never drop what the client asked for in silence: answer it without search, and say so.
            exchange.headers[SEARCH_HEADER] = f"skipped: {', '.join(unsupported)} not supported with search"
            return Call(self.url(self.chat_path), orjson.dumps(body))
        exchange.prompt_chars = sum(
            len(text_of(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
        return SearchCall(
            self.url("/responses"),
            orjson.dumps(responses_request(body, search_tools(search))),
            citations=search.get("return_citations", True) is not False,
        )

    def translate_completion(self, call: Call, raw: bytes, exchange: Exchange) -> bytes:
        if not isinstance(call, SearchCall):
            return super().translate_completion(call, raw, exchange)
        return translate_answer(self.name, raw, exchange, with_citations=call.citations)

    def stream_translator(self, call: Call, exchange: Exchange) -> StreamTranslator:
        if not isinstance(call, SearchCall):
            return super().stream_translator(call, exchange)
        return ResponsesStream(self.name, exchange, with_citations=call.citations)


# request mapping -----------------------------------------------------------


def _wants_search(search: Any) -> bool:
    """Live Search's default mode was "auto"; only an explicit "off" turned it off."""
    return isinstance(search, dict) and search.get("mode", "auto") != "off"


def chat_only_fields(body: dict[str, Any]) -> list[str]:
    """What the client asked for that the Responses translation cannot carry (the client's
    contract wins over configured search): function tools, several choices, logprobs, stops,
    seeds, penalties."""
    asked = [name for name in CHAT_ONLY if body.get(name) not in (None, False, [], {})]
    if body.get("n") not in (None, 1):
        asked.append("n")
    if any(
        isinstance(m, dict) and (m.get("role") in ("tool", "function") or m.get("tool_calls"))
        for m in body.get("messages") or ()
    ):
        asked.append("tool messages")
    return asked


def check_search(search: dict[str, Any]) -> None:
    """400 unless `search_parameters` has the shape Live Search documented."""
    sources = search.get("sources")
    if sources is not None and not (isinstance(sources, list) and all(isinstance(s, dict) for s in sources)):
        raise InvalidRequest("'search_parameters.sources' must be an array of objects.", param="search_parameters")
    for source in sources or ():
        for name in ("allowed_websites", "excluded_websites", "included_x_handles", "excluded_x_handles", "x_handles"):
            value = source.get(name)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise InvalidRequest(
                    f"'search_parameters.sources[].{name}' must be an array of strings.", param="search_parameters"
                )
    for name in ("from_date", "to_date"):
        if search.get(name) is not None and not isinstance(search[name], str):
            raise InvalidRequest(f"'search_parameters.{name}' must be a date string.", param="search_parameters")


def search_tools(search: dict[str, Any]) -> list[dict[str, Any]]:
    """`web_search` and/or `x_search` for Live Search's `sources` (none given: both, as Live Search did).

    One `web_search` tool serves every web, news and rss source, so filters are
    widened rather than narrowed: a domain is allowed if any source allows it
    (no allow-list if one source has none) and excluded only if every source
    excludes it. xAI takes either an allow-list or an exclusion list, not both;
    an allow-list already leaves the rest out, so it wins. RSS feeds, country,
    safe_search, max_search_results and the engagement filters have no
    equivalent and are dropped. Dates apply to `x_search` only, the one tool
    that takes them.
    """
    sources = [s for s in search.get("sources") or () if isinstance(s, dict)]
    if not sources:
        sources = [{"type": "web"}, {"type": "x"}]
    tools: list[dict[str, Any]] = []
    web = [s for s in sources if s.get("type") in WEB_SOURCES]
    if web:
        tools.append(
            {
                "type": "web_search",
                **_widened(web, "allowed_websites", "excluded_websites", "_domains"),
            }
        )
    # `x_handles` is Live Search's older name for `included_x_handles`.
    x = [
        {**s, "included_x_handles": s.get("included_x_handles") or s.get("x_handles")}
        for s in sources
        if s.get("type") == "x"
    ]
    if x:
        tool = {
            "type": "x_search",
            **_widened(x, "included_x_handles", "excluded_x_handles", "_x_handles"),
        }
        tool.update({name: search[name] for name in ("from_date", "to_date") if search.get(name)})
        tools.append(tool)
    return tools or [{"type": "web_search"}, {"type": "x_search"}]


def _widened(
    sources: list[dict[str, Any]], allow: str, exclude: str, suffix: str
) -> dict[str, list[str]]:
    """One tool's filters for several sources: `allowed{suffix}` or `excluded{suffix}`, or none."""
    allowed = [s.get(allow) or [] for s in sources]
    if all(allowed):
        return {"allowed" + suffix: _unique(v for group in allowed for v in group)}
    everywhere = [
        v
        for v in _unique(sources[0].get(exclude) or ())
        if all(v in (s.get(exclude) or ()) for s in sources)
    ]
    return {"excluded" + suffix: everywhere} if everywhere else {}


def _unique(items: Any) -> list[Any]:
    return list(dict.fromkeys(items))
