"""The fake upstream: what nginx answers in place of a provider, and what is asked of it.

A fixed chat completion (with usage) at `/json/v1/chat/completions`, a fixed
stream of CHUNKS `chat.completion.chunk` events and `data: [DONE]` at
`/sse/v1/chat/completions`, and a fixed embeddings answer at `/json/v1/embeddings`,
all served by nginx from its configuration.
"""

from __future__ import annotations

import json

CHUNKS = 20
JSON_MODEL = "bench-json"
SSE_MODEL = "bench-sse"
EMBED_MODEL = "bench-embed"
FAILOVER_MODEL = "bench-failover"  # a first deployment that refuses connections, then the JSON one
ERROR_MODEL = "bench-error"  # a provider that answers 503 to everything: retried, then the error
EMBED_DIMENSIONS = 256



def completion_body() -> str:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": JSON_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        },
        separators=(",", ":"),
    )


def stream_body() -> str:
    events = []
    for i in range(CHUNKS):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f"word{i} "}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": SSE_MODEL,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": "stop" if i == CHUNKS - 1 else None}
            ],
        }
        if i == CHUNKS - 1:
            chunk["usage"] = {
                "prompt_tokens": 12,
                "completion_tokens": CHUNKS - 1,
                "total_tokens": 31,
            }
        events.append("data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n")
    return "".join(events) + "data: [DONE]\n\n"


def embedding_body() -> str:
    """An embeddings answer of one vector (base64, as the openai SDK asks by default)."""
    vector = "AAAAAA" * (EMBED_DIMENSIONS // 4 * 4 // 6 + 1)
    return json.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": EMBED_MODEL,
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        },
        separators=(",", ":"),
    )


def embedding_request() -> str:
    return json.dumps(
        {"model": EMBED_MODEL, "input": "Say hello.", "encoding_format": "base64"}, separators=(",", ":")
    )


def request_body(model: str, stream: bool) -> str:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = /json/v1/chat/completions {{
            default_type application/json;
            return 200 '{json}';
        }}
        location = /json/v1/embeddings {{
            default_type application/json;
            return 200 '{embed}';
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 '{sse}';
        }}
        location = /down/v1/chat/completions {{
            default_type application/json;
            return 503 '{{"error":{{"message":"overloaded","type":"server_error"}}}}';
        }}
        location / {{ return 404; }}
    }}
}}
"""
