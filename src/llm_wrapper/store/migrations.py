"""The schema, as ordered, named steps; each is recorded in `schema_migrations` once applied.

A step is (name, SQLite statements, PostgreSQL statements). Append new steps;
never edit an applied one.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str], list[str]]] = [
    (
        "0001_tokens",
        [
            """CREATE TABLE tokens (
                token_hash TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                expiry TEXT,
                rate_limit INTEGER NOT NULL,
                request_count INTEGER NOT NULL DEFAULT 0,
                last_request_date TEXT,
                lifetime_requests INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX tokens_username ON tokens (username)",
        ],
        [
            """CREATE TABLE tokens (
                token_hash TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                expiry TIMESTAMPTZ,
                rate_limit INTEGER NOT NULL,
                request_count INTEGER NOT NULL DEFAULT 0,
                last_request_date DATE,
                lifetime_requests BIGINT NOT NULL DEFAULT 0,
                created_at TIMESTAMPTZ NOT NULL
            )""",
            "CREATE INDEX tokens_username ON tokens (username)",
        ],
    ),
]
