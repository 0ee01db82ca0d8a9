"""`llm-wrapper tokens …` and `tokens/manage_tokens.py …`, run as users run them (subprocesses)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from llm_wrapper.tokens import hash_token

from .fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from .fakes.server import ThreadedServer
from .gateway_process import BIN, GatewayProcess

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "tokens" / "manage_tokens.py"


class Tokens:
    """Runs the token commands against one database."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LLM_WRAPPER_ENV_FILE": str(tmp_path / "missing.env"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "llm-wrapper"), "tokens", *args],
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def shim(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SHIM), *args],
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def add(
        self, username: str = "alice", rate_limit: int = 5, expiry: str = "2099-01-01 00:00:00"
    ) -> dict:
        out = self.run(
            "add",
            "--username",
            username,
            "--expiry",
            expiry,
            "--rate-limit",
            str(rate_limit),
            "--json",
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def list(self) -> list[dict]:
        out = self.run("list", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def sqlite_tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path, f"sqlite:///{tmp_path / 'tokens.db'}")


def row_count(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "tokens.db") as db:
        return db.execute("SELECT count(*) FROM tokens").fetchone()[0]


def assert_no_secret(text: str, token: str) -> None:
    assert token not in text and token[5:] not in text
    assert hash_token(token) not in text  # only its first 10 characters, the id, may appear


def check_add_list_delete(tokens: Tokens) -> None:
    added = tokens.add("alice", rate_limit=5, expiry="2030-01-01 00:00:00")
    assert set(added) >= {"token", "username", "expiry", "rate_limit"}
    assert (added["username"], added["expiry"], added["rate_limit"]) == (
        "alice",
        "2030-01-01 00:00:00",
        5,
    )
    token = added["token"]
    assert re.fullmatch(r"llmw_[A-Za-z0-9_-]{43,}", token)
    expired = tokens.add("bob", rate_limit=1, expiry="2000-01-01 00:00:00")

    listed = tokens.list()
    assert [r["username"] for r in listed] == ["alice", "bob"]
    for row in listed:
        assert set(row) >= {
            "username",
            "expiry",
            "expired",
            "rate_limit",
            "requests_today",
            "lifetime_requests",
        }
        assert (row["requests_today"], row["lifetime_requests"]) == (0, 0)
    assert [r["expired"] for r in listed] == [False, True]
    assert listed[0]["id"] == hash_token(token)[:10]
    text = tokens.run("list")
    assert text.returncode == 0 and "alice" in text.stdout and "expired" in text.stdout
    for output in (json.dumps(listed), text.stdout, text.stderr):
        assert_no_secret(output, token)
        assert_no_secret(output, expired["token"])

    deleted = tokens.run("delete", "--token", token)
    assert deleted.returncode == 0, deleted.stderr
    assert "alice" in deleted.stdout
    assert [r["username"] for r in tokens.list()] == ["bob"]
    by_id = tokens.run("delete", "--id", tokens.list()[0]["id"])
    assert by_id.returncode == 0, by_id.stderr
    assert tokens.list() == []


def test_add_list_delete_on_sqlite(sqlite_tokens: Tokens, tmp_path: Path) -> None:
    check_add_list_delete(sqlite_tokens)
    assert row_count(tmp_path) == 0


def test_add_list_delete_import_on_postgres(tmp_path: Path, pg_dsn: str) -> None:
    tokens = Tokens(tmp_path, pg_dsn)
    check_add_list_delete(tokens)
    original = tmp_path / "auth_tokens.db"
    original_database(original)
    for expected in ("Imported 3", "Imported 0"):
        out = tokens.run("import", str(original))
        assert out.returncode == 0 and expected in out.stdout, (out.stdout, out.stderr)
        listed = [(r["username"], r["requests_today"], r["lifetime_requests"]) for r in tokens.list()]
        assert listed == [("gone", 0, 0), ("olduser", 3, 40), ("staleuser", 0, 12)]


def test_add_prints_the_token_once_in_plain_text(sqlite_tokens: Tokens) -> None:
    out = sqlite_tokens.run(
        "add", "--username", "carol", "--expiry", "2030-01-01 00:00:00", "--rate_limit", "3"
    )
    assert out.returncode == 0, out.stderr
    tokens = re.findall(r"llmw_[A-Za-z0-9_-]{43,}", out.stdout)
    assert len(tokens) == 1
    assert "carol" in out.stdout and "2030-01-01 00:00:00" in out.stdout
    assert [r["username"] for r in sqlite_tokens.list()] == ["carol"]


def test_the_original_command_lines(sqlite_tokens: Tokens, tmp_path: Path) -> None:
    assert sqlite_tokens.shim("list").returncode == 0  # the original's "initialise" step
    added = sqlite_tokens.shim(
        "add", "--username", "u", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "5"
    )
    assert added.returncode == 0, added.stderr
    (token,) = re.findall(r"llmw_[A-Za-z0-9_-]{43,}", added.stdout)
    listed = sqlite_tokens.shim("list")
    assert listed.returncode == 0 and "u" in listed.stdout and "0 / 5" in listed.stdout
    assert_no_secret(listed.stdout, token)
    assert row_count(tmp_path) == 1
    deleted = sqlite_tokens.shim("delete", "--token", token)
    assert deleted.returncode == 0, deleted.stderr
    assert row_count(tmp_path) == 0
    again = sqlite_tokens.shim("delete", "--token", token)
    assert again.returncode == 2
    assert again.stderr.startswith("manage_tokens.py: error:")


BAD_ADDS = [
    (["--username", "u", "--expiry", "next tuesday", "--rate-limit", "5"], "expiry"),
    (["--username", "u", "--expiry", "2030-02-30 00:00:00", "--rate-limit", "5"], "expiry"),
    (["--username", "u", "--expiry", "", "--rate-limit", "5"], "expiry"),
    (["--username", "u", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "0"], "rate-limit"),
    (["--username", "u", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "-3"], "rate-limit"),
    (["--username", "u", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "ten"], "rate-limit"),
    (
        ["--username", "u", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "99999999999"],
        "rate-limit",
    ),
    (["--username", "", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "5"], "username"),
    (["--username", "   ", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "5"], "username"),
    (["--expiry", "2030-01-01 00:00:00", "--rate-limit", "5"], "username"),
]


@pytest.mark.parametrize("use_shim", [False, True], ids=["llm-wrapper", "manage_tokens.py"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    sqlite_tokens: Tokens, tmp_path: Path, use_shim: bool
) -> None:
    run = sqlite_tokens.shim if use_shim else sqlite_tokens.run
    prog = "manage_tokens.py" if use_shim else "llm-wrapper"
    sqlite_tokens.add("keep")
    cases = [(["add", *args], word) for args, word in BAD_ADDS] + [
        (["delete", "--token", "llmw_unknown"], "no such token"),
        (["delete", "--id", "0000000000"], "no such token"),
        (["delete"], "--token"),
    ]
    for args, word in cases:
        out = run(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        line = out.stderr.strip()
        assert "\n" not in line and line.startswith(f"{prog}: error:"), (args, out.stderr)
        assert word in line, (args, line)
        assert out.stdout == "", (args, out.stdout)
        assert row_count(tmp_path) == 1, args


ORIGINAL_SCHEMA = """CREATE TABLE tokens (
    token TEXT PRIMARY KEY, username TEXT NOT NULL, expiry TEXT NOT NULL,
    request_count INTEGER DEFAULT 0, rate_limit INTEGER NOT NULL,
    last_request_date TEXT, lifetime_requests INTEGER DEFAULT 0
)"""


def original_database(path: Path) -> dict[str, str]:
    """An auth_tokens.db as the original manage_tokens.py wrote it: plaintext tokens."""
    today = datetime.now(UTC).date().isoformat()
    tokens = {
        "active": "old-secret-active-3f9a7c",
        "stale": "old-secret-stale-81be2d",
        "expired": "old-secret-expired-55c0aa",
    }
    with sqlite3.connect(path) as db:
        db.execute(ORIGINAL_SCHEMA)
        db.executemany(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (tokens["active"], "olduser", "2099-01-01 00:00:00", 3, 10, today, 40),
                (tokens["stale"], "staleuser", "2099-01-01 00:00:00", 7, 10, "2020-01-01", 12),
                (tokens["expired"], "gone", "2020-01-01 00:00:00", 0, 10, None, 0),
            ],
        )
    db.close()
    return tokens


@pytest.fixture
def provider() -> Iterator[ThreadedServer]:
    server = ThreadedServer(minimal_openai_app()).start()
    yield server
    server.stop()


def test_import_of_the_original_database(tmp_path: Path, provider: ThreadedServer) -> None:
    original = tmp_path / "auth_tokens.db"
    secrets = original_database(original)
    gateway = GatewayProcess(
        tmp_path,
        {KEY_ENV: "sk-fake", "DATABASE_URL": f"sqlite:///{tmp_path / 'tokens.db'}"},
        config=minimal_openai_config(provider.url),
    )
    first = gateway.cli("tokens", "import", str(original))
    assert "Imported 3" in first.stdout
    listed = json.loads(gateway.cli("tokens", "list", "--json").stdout)
    assert [
        (r["username"], r["requests_today"], r["lifetime_requests"], r["rate_limit"], r["expired"])
        for r in listed
    ] == [("gone", 0, 0, 10, True), ("olduser", 3, 40, 10, False), ("staleuser", 0, 12, 10, False)]
    second = gateway.cli("tokens", "import", str(original))
    assert "Imported 0" in second.stdout
    assert json.loads(gateway.cli("tokens", "list", "--json").stdout) == listed
    assert row_count(tmp_path) == 3
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("tokens.db*"))
    for secret in secrets.values():
        assert secret.encode() not in blob
        assert hash_token(secret).encode() in blob

    gateway.start()
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secrets['active']}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-remaining-requests"] == "6"
        assert answer.json()["choices"][0]["message"]["content"] == "pong"
        stale = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secrets['stale']}"},
            timeout=30,
        )
        assert stale.status_code == 200 and stale.headers["x-ratelimit-remaining-requests"] == "9"
        refused = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secrets['expired']}"},
            timeout=30,
        )
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_expired"
    finally:
        gateway.stop()
    after = {
        r["username"]: (r["requests_today"], r["lifetime_requests"])
        for r in json.loads(gateway.cli("tokens", "list", "--json").stdout)
    }
    assert after == {"gone": (0, 0), "olduser": (4, 41), "staleuser": (1, 13)}


def test_import_refuses_what_is_not_a_token_database(sqlite_tokens: Tokens, tmp_path: Path) -> None:
    sqlite_tokens.add("keep")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    for path in (tmp_path / "missing.db", junk, empty):
        out = sqlite_tokens.run("import", str(path))
        assert out.returncode == 2, out.stderr
        assert "\n" not in out.stderr.strip() and out.stderr.startswith("llm-wrapper: error:")
    assert row_count(tmp_path) == 1


def test_a_setting_of_the_wrong_type_exits_2_with_one_line(sqlite_tokens: Tokens) -> None:
    sqlite_tokens.env["MONITOR_TTL_HOURS"] = "abc"
    out = sqlite_tokens.run("list")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.startswith("llm-wrapper: error: MONITOR_TTL_HOURS: ") and out.stderr.count("\n") == 1
