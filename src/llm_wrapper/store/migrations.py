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
    # Monitors and the event groups their webhooks announce. At most one active monitor a
    # user (the partial unique index); a delivery is stored once by webhook id and once by
    # (monitor, event group). Fetches and remote cancels are claimed with leases
    # (`next_attempt_at`, `cancel_next_at`), so one instance works on each at a time.
    (
        "0002_monitors",
        [
            """CREATE TABLE monitors (
                monitor_id TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                query TEXT NOT NULL,
                frequency TEXT NOT NULL,
                created_at TEXT NOT NULL,
                deactivated_at TEXT,
                remote_state TEXT NOT NULL DEFAULT 'active',
                cancel_pending INTEGER NOT NULL DEFAULT 0,
                cancel_attempts INTEGER NOT NULL DEFAULT 0,
                cancel_next_at TEXT,
                last_error TEXT,
                last_run_at TEXT,
                last_run_status TEXT
            )""",
            "CREATE INDEX monitors_user ON monitors (username, created_at)",
            "CREATE UNIQUE INDEX monitors_one_active ON monitors (username) WHERE deactivated_at IS NULL",
            "CREATE INDEX monitors_cancel_due ON monitors (cancel_next_at) WHERE cancel_pending = 1",
            """CREATE TABLE event_groups (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                monitor_id TEXT NOT NULL,
                event_group_id TEXT NOT NULL,
                webhook_id TEXT UNIQUE,
                received_at TEXT NOT NULL,
                fetch_state TEXT NOT NULL DEFAULT 'pending',
                fetch_attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT,
                last_error TEXT,
                fetched_at TEXT,
                events TEXT,
                event_date TEXT,
                source_urls TEXT,
                processed_at TEXT,
                UNIQUE (monitor_id, event_group_id)
            )""",
            "CREATE INDEX event_groups_fetch_due ON event_groups (next_attempt_at) WHERE fetch_state = 'pending'",
            "CREATE INDEX event_groups_waiting ON event_groups (monitor_id) WHERE processed_at IS NULL",
        ],
        [
            """CREATE TABLE monitors (
                monitor_id TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                query TEXT NOT NULL,
                frequency TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                deactivated_at TIMESTAMPTZ,
                remote_state TEXT NOT NULL DEFAULT 'active',
                cancel_pending BOOLEAN NOT NULL DEFAULT FALSE,
                cancel_attempts INTEGER NOT NULL DEFAULT 0,
                cancel_next_at TIMESTAMPTZ,
                last_error TEXT,
                last_run_at TIMESTAMPTZ,
                last_run_status TEXT
            )""",
            "CREATE INDEX monitors_user ON monitors (username, created_at)",
            "CREATE UNIQUE INDEX monitors_one_active ON monitors (username) WHERE deactivated_at IS NULL",
            "CREATE INDEX monitors_cancel_due ON monitors (cancel_next_at) WHERE cancel_pending",
            """CREATE TABLE event_groups (
                id BIGSERIAL PRIMARY KEY,
                monitor_id TEXT NOT NULL,
                event_group_id TEXT NOT NULL,
                webhook_id TEXT UNIQUE,
                received_at TIMESTAMPTZ NOT NULL,
                fetch_state TEXT NOT NULL DEFAULT 'pending',
                fetch_attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TIMESTAMPTZ,
                last_error TEXT,
                fetched_at TIMESTAMPTZ,
                events JSONB,
                event_date TEXT,
                source_urls JSONB,
                processed_at TIMESTAMPTZ,
                UNIQUE (monitor_id, event_group_id)
            )""",
            "CREATE INDEX event_groups_fetch_due ON event_groups (next_attempt_at) WHERE fetch_state = 'pending'",
            "CREATE INDEX event_groups_waiting ON event_groups (monitor_id) WHERE processed_at IS NULL",
        ],
    ),
    # Usage per token, UTC day and model, added to by every process's flusher
    # (`INSERT … ON CONFLICT DO UPDATE SET x = x + excluded.x`); the username is kept so the rows
    # outlive the token. A token's budget, allow-list (JSON text) and its spend in the current
    # period (`spent_usd` as of `spent_period`, the period's first day), kept by the flusher.
    (
        "0003_usage",
        [
            """CREATE TABLE usage_daily (
                token_hash TEXT NOT NULL,
                day TEXT NOT NULL,
                model TEXT NOT NULL,
                username TEXT NOT NULL,
                requests INTEGER NOT NULL DEFAULT 0,
                errors INTEGER NOT NULL DEFAULT 0,
                prompt_tokens INTEGER NOT NULL DEFAULT 0,
                completion_tokens INTEGER NOT NULL DEFAULT 0,
                cost_usd REAL NOT NULL DEFAULT 0,
                unpriced INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (token_hash, day, model)
            )""",
            "CREATE INDEX usage_daily_day ON usage_daily (day, username)",
            "ALTER TABLE tokens ADD COLUMN budget_usd REAL",
            "ALTER TABLE tokens ADD COLUMN budget_period TEXT",
            "ALTER TABLE tokens ADD COLUMN models TEXT",
            "ALTER TABLE tokens ADD COLUMN spent_usd REAL NOT NULL DEFAULT 0",
            "ALTER TABLE tokens ADD COLUMN spent_period TEXT",
        ],
        [
            """CREATE TABLE usage_daily (
                token_hash TEXT NOT NULL,
                day DATE NOT NULL,
                model TEXT NOT NULL,
                username TEXT NOT NULL,
                requests BIGINT NOT NULL DEFAULT 0,
                errors BIGINT NOT NULL DEFAULT 0,
                prompt_tokens BIGINT NOT NULL DEFAULT 0,
                completion_tokens BIGINT NOT NULL DEFAULT 0,
                cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
                unpriced BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (token_hash, day, model)
            )""",
            "CREATE INDEX usage_daily_day ON usage_daily (day, username)",
            "ALTER TABLE tokens ADD COLUMN budget_usd DOUBLE PRECISION",
            "ALTER TABLE tokens ADD COLUMN budget_period TEXT",
            "ALTER TABLE tokens ADD COLUMN models TEXT",
            "ALTER TABLE tokens ADD COLUMN spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0",
            "ALTER TABLE tokens ADD COLUMN spent_period DATE",
        ],
    ),
]
