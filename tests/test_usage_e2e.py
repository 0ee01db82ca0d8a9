"""Usage through the real server: exact after concurrent load on two workers and on two instances
sharing PostgreSQL, nothing lost on SIGTERM right after a burst, and the `tokens update` and
`usage` commands.

The minimal fake provider answers every request with 1 prompt and 1 completion token of
`gpt-4o-mini`, so N requests are exactly N, N, N tokens and N x (0.15 + 0.6) / 1e6 USD.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_config
from .fakes.server import ThreadedServer
from .gateway_process import GatewayProcess
from .test_scale_out import spread

COST = (0.15 + 0.6) / 1e6


def gateway(folder: Path, database_url: str, provider: ThreadedServer, workers: int = 1) -> GatewayProcess:
    folder.mkdir(exist_ok=True)
    return GatewayProcess(folder, {"DATABASE_URL": database_url, KEY_ENV: "sk-fake"},
                          config=minimal_openai_config(provider.url), workers=workers)


def usage(process: GatewayProcess, *args: str) -> list[dict]:
    return json.loads(process.cli("usage", "--json", *args).stdout)


def terminate(process: GatewayProcess) -> int:
    """SIGTERM; the exit status, which must come within 30 s."""
    assert process.proc is not None
    process.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    status = process.proc.wait(30)
    assert time.monotonic() - started < 30
    return status


async def test_two_workers_then_sigterm_right_after_a_burst_lose_nothing(
    tmp_path: Path, database_url: str, provider: ThreadedServer
) -> None:
    process = gateway(tmp_path / "gw", database_url, provider, workers=2)
    process.env["USAGE_FLUSH_SECONDS"] = "3600"  # nothing is written before the shutdown
    first, second = process.add_token("ann"), process.add_token("ben")
    process.start()
    try:
        statuses = await spread([process.url], first, 150)
        statuses += await spread([process.url], second, 50)
        assert statuses == Counter({200: 200})
        assert usage(process) == []  # all of it is still in the workers' memory
        assert terminate(process) == 0
    finally:
        process.stop()
    rows = {r["username"]: r for r in usage(process)}
    assert {name: (r["requests"], r["errors"], r["prompt_tokens"], r["completion_tokens"], r["total_tokens"])
            for name, r in rows.items()} == {"ann": (150, 0, 150, 150, 300), "ben": (50, 0, 50, 50, 100)}
    assert rows["ann"]["cost_usd"] == pytest.approx(150 * COST)
    assert rows["ann"]["model"] == MODEL and rows["ann"]["date"] == datetime.now(UTC).date().isoformat()
    listed = {t["username"]: t for t in json.loads(process.cli("tokens", "list", "--json").stdout)}
    assert listed["ann"]["spent_usd"] == pytest.approx(150 * COST)
    assert "Traceback" not in process.logs()


async def test_two_instances_sharing_postgresql_add_up_exactly(
    tmp_path: Path, pg_dsn: str, provider: ThreadedServer
) -> None:
    one = gateway(tmp_path / "a", pg_dsn, provider)
    two = gateway(tmp_path / "b", pg_dsn, provider)
    token = one.add_token("shared")
    one.start()
    two.start()
    try:
        assert await spread([one.url, two.url], token, 240) == Counter({200: 240})
        time.sleep(1.5)  # both flushers, while running
        [row] = usage(two)
        assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (240, 240, 240)
        assert await spread([one.url, two.url], token, 60) == Counter({200: 60})
    finally:
        assert terminate(one) == 0 and terminate(two) == 0
    [row] = usage(one)
    assert (row["requests"], row["total_tokens"]) == (300, 600) and row["cost_usd"] == pytest.approx(300 * COST)


async def test_a_budget_and_an_allow_list_set_by_the_command_line(tmp_path: Path, provider: ThreadedServer) -> None:
    process = gateway(tmp_path / "gw", f"sqlite:///{tmp_path / 'gw.db'}", provider)
    token = process.add_token("cat")
    process.start()
    try:
        assert await spread([process.url], token, 3) == Counter({200: 3})
        [listed] = json.loads(process.cli("tokens", "list", "--json").stdout)
        out = process.cli("tokens", "update", "--id", listed["id"], "--budget-usd", str(3 * COST),
                          "--budget-period", "day", "--models", "gpt-4o*,other", "--rate-limit", "9", "--json")
        updated = json.loads(out.stdout)
        assert (updated["budget_usd"], updated["budget_period"], updated["models"]) == (3 * COST, "day", ["gpt-4o*", "other"])
        assert (updated["requests_today"], updated["lifetime_requests"], updated["rate_limit"]) == (3, 3, 9)
        time.sleep(1.5)  # the spend reaches the token row with the next flush
        assert await spread([process.url], token, 2) == Counter({429: 2})
        process.cli("tokens", "update", "--token", token, "--no-budget", "--models", "other")
        assert await spread([process.url], token, 2) == Counter({403: 2})
        process.cli("tokens", "update", "--token", token, "--all-models")
        assert await spread([process.url], token, 1) == Counter({200: 1})
        [final] = json.loads(process.cli("tokens", "list", "--json").stdout)
        assert (final["budget_usd"], final["models"], final["requests_today"]) == (None, None, 4)
    finally:
        process.stop()


def test_usage_groups_by_day_model_and_user(tmp_path: Path) -> None:
    process = GatewayProcess(tmp_path, {})
    db = tmp_path / "gateway.db"
    process.add_token("seed")  # creates and migrates the database
    import sqlite3

    today = datetime.now(UTC).date()
    rows = [("h1", today, "m1", "ann", 2, 1, 10, 5, 0.5), ("h1", today, "m2", "ann", 1, 0, 1, 1, 0.25),
            ("h2", today, "m1", "ben", 4, 0, 4, 4, 1.0), ("h1", today - timedelta(days=1), "m1", "ann", 1, 0, 1, 1, 0.125),
            ("h1", today - timedelta(days=40), "m1", "ann", 9, 0, 9, 9, 9.0)]
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO usage_daily (token_hash, day, model, username, requests, errors, prompt_tokens, "
            "completion_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(h, d.isoformat(), *rest) for h, d, *rest in rows],
        )
    detail = usage(process)
    assert [(r["date"], r["username"], r["model"], r["requests"]) for r in detail] == [
        ((today - timedelta(days=1)).isoformat(), "ann", "m1", 1), (today.isoformat(), "ann", "m1", 2),
        (today.isoformat(), "ann", "m2", 1), (today.isoformat(), "ben", "m1", 4)]
    assert set(detail[0]) == {"date", "username", "model", "requests", "errors", "prompt_tokens",
                              "completion_tokens", "total_tokens", "cost_usd"}
    assert usage(process, "--by", "day") == [
        {"date": (today - timedelta(days=1)).isoformat(), "requests": 1, "errors": 0, "prompt_tokens": 1,
         "completion_tokens": 1, "total_tokens": 2, "cost_usd": 0.125},
        {"date": today.isoformat(), "requests": 7, "errors": 1, "prompt_tokens": 15, "completion_tokens": 10,
         "total_tokens": 25, "cost_usd": 1.75}]
    assert [(r["model"], r["requests"]) for r in usage(process, "--by", "model")] == [("m1", 7), ("m2", 1)]
    assert [(r["username"], r["cost_usd"]) for r in usage(process, "--by", "user")] == [("ann", 0.875), ("ben", 1.0)]
    assert [r["username"] for r in usage(process, "--by", "user", "--username", "ben")] == ["ben"]
    old = usage(process, "--since", (today - timedelta(days=60)).isoformat(), "--by", "user", "--username", "ann")
    assert old[0]["requests"] == 13
    table = process.cli("usage", "--by", "model").stdout
    assert table.splitlines()[0].split("\t")[:3] == ["model", "requests", "errors"]
    for bad in (["--since", "yesterday"], ["--by", "week"], ["--since", today.isoformat(), "--until", "2000-01-01"]):
        result = process.cli("usage", *bad, check=False)
        assert result.returncode == 2 and result.stderr.startswith("llm-wrapper: error:"), bad


def test_tokens_update_refuses_bad_values_and_unknown_tokens(tmp_path: Path) -> None:
    process = GatewayProcess(tmp_path, {})
    token = process.add_token("dan", rate_limit=5)
    before = process.cli("tokens", "list", "--json").stdout
    token_id = json.loads(before)[0]["id"]
    for bad in (["--rate-limit", "0"], ["--budget-usd", "-1"], ["--budget-period", "week"], ["--models", ","],
                ["--expiry", "soon"], ["--budget-usd", "1", "--no-budget"], ["--models", "a", "--all-models"], []):
        result = process.cli("tokens", "update", "--id", token_id, *bad, check=False)
        assert result.returncode == 2, bad
    assert process.cli("tokens", "list", "--json").stdout == before
    missing = process.cli("tokens", "update", "--id", "0000000000", "--rate-limit", "3", check=False)
    assert missing.returncode != 0 and "0000000000" in missing.stderr
    assert process.cli("tokens", "update", "--token", "llmw_nope", "--rate-limit", "3", check=False).returncode != 0
    process.cli("tokens", "update", "--token", token, "--expiry", "2040-01-02 03:04:05")
    [row] = json.loads(process.cli("tokens", "list", "--json").stdout)
    assert (row["expiry"], row["rate_limit"], row["id"]) == ("2040-01-02 03:04:05", 5, token_id)
    added = json.loads(process.cli("tokens", "add", "--username", "eve", "--expiry", "2099-01-01 00:00:00",
                                   "--rate-limit", "5", "--budget-usd", "2.5", "--models", "a,b*", "--json").stdout)
    assert (added["budget_usd"], added["budget_period"], added["models"]) == (2.5, "month", ["a", "b*"])
    bad_add = process.cli("tokens", "add", "--username", "f", "--expiry", "2099-01-01 00:00:00", "--rate-limit", "5",
                          "--budget-usd", "-2", check=False)
    assert bad_add.returncode == 2 and "--budget-usd" in bad_add.stderr
