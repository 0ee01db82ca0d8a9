"""What the list commands print, run as users run them: whole rows when piped, whole values on a
narrow terminal, and text from users printed literally, without a single control character."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llm_wrapper.cli.output import printable
from llm_wrapper.monitors.records import Monitor
from llm_wrapper.settings import load_settings
from llm_wrapper.store import open_store
from llm_wrapper.tokens import hash_token

from .gateway_process import BIN

LONG_NAME = "acc-0f12007" + "b" * 52 + "-alice"  # 69 characters
LONG_QUERY = "price of " + "very " * 40 + "old GPUs"
HOSTILE = [
    "[/oops]",
    "[bold]x",
    "\x1b[31mred",
    "\x1b]8;;http://evil\x07link\x1b]8;;\x07",
    "c1\x9b31mcsi\x85nel\x01soh",  # no NUL: neither database stores one (refused with 400)
]
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but the newline and tab we print
RICH_STYLE = re.compile(r"\x1b\[[0-9;]*m")  # what rich itself writes for colour and bold


def seed(database_url: str, usernames: list[str], monitors: list[tuple[str, str, str]]) -> None:
    """Tokens and monitors (id, username, query) written through the store, as the API would."""

    async def write() -> None:
        store = open_store(load_settings({"DATABASE_URL": database_url}))
        try:
            await store.migrate()
            now = datetime.now(UTC)
            for number, username in enumerate(usernames):
                await store.add_token(token_hash=hash_token(f"llmw_seed{number}"), username=username,
                                      expiry=now + timedelta(days=30), rate_limit=5, now=now)
            for monitor_id, username, query in monitors:
                await store.insert_monitor(Monitor(monitor_id=monitor_id, username=username, query=query,
                                                   frequency="1d", created_at=now))
        finally:
            await store.close()

    asyncio.run(write())


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.database_url = f"sqlite:///{tmp_path / 'cli.db'}"
        self.cwd = tmp_path
        self.env = {**os.environ, "DATABASE_URL": self.database_url,
                    "LLM_WRAPPER_ENV_FILE": str(tmp_path / "missing.env")}
        for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "COLUMNS", "PARALLELAI_API_KEY",
                     "PARALLEL_API_KEY"):
            self.env.pop(name, None)

    def run(self, *args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
        """`llm-wrapper ARGS` with stdout a pipe; with `columns`, rich is told it is a terminal that wide."""
        env = dict(self.env)
        if columns is not None:
            env.update(TTY_COMPATIBLE="1", COLUMNS=str(columns))
        result = subprocess.run([str(BIN / "llm-wrapper"), *args], env=env, cwd=self.cwd,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"}
        return subprocess.run(command, shell=True, env=env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=60)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_piped_lists_are_whole_tab_separated_rows(cli: Cli) -> None:
    seed(cli.database_url, [LONG_NAME, "bob"], [("mon_long", LONG_NAME, LONG_QUERY)])
    tokens = cli.run("tokens", "list").stdout
    header, *rows = tokens.splitlines()
    assert header.split("\t") == [
        "id", "username", "expiry (UTC)", "status", "today / limit", "lifetime", "spent / budget (USD)", "models",
    ]
    assert sorted(row.split("\t")[1] for row in rows) == sorted([LONG_NAME, "bob"])
    assert all(len(row.split("\t")) == 8 for row in rows)
    monitors = cli.run("monitors", "list").stdout
    header, row = monitors.splitlines()
    assert header.split("\t")[:3] == ["monitor_id", "username", "query"]
    assert row.split("\t")[:3] == ["mon_long", LONG_NAME, LONG_QUERY]
    for text in (tokens, monitors):
        assert "…" not in text and "\x1b" not in text

    grep = cli.shell("llm-wrapper tokens list | grep alice")
    assert grep.returncode == 0, grep.stderr
    assert grep.stdout.split("\t")[1] == LONG_NAME
    cut = cli.shell("llm-wrapper monitors list | grep alice | cut -f3")
    assert cut.stdout == LONG_QUERY + "\n"


def column(table: str, number: int) -> str:
    """The text of one column of a one-row rich table, its folded lines joined again."""
    lines = RICH_STYLE.sub("", table).splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1:]
    return "".join(line.split("│")[number + 1].strip() for line in body if line.startswith("│"))


@pytest.mark.parametrize("columns", [40, 24])
def test_a_narrow_terminal_folds_long_values_and_never_cuts_them(cli: Cli, columns: int) -> None:
    seed(cli.database_url, [LONG_NAME], [("mon_long", LONG_NAME, LONG_QUERY)])
    tokens = cli.run("tokens", "list", columns=columns).stdout
    monitors = cli.run("monitors", "list", columns=columns).stdout
    for table in (tokens, monitors):
        assert "┏" in table and "…" not in table  # a rich table, nothing cut short
    token_id = hash_token("llmw_seed0")[:10]
    assert (column(tokens, 0), column(tokens, 1)) == (token_id, LONG_NAME)
    assert [column(monitors, n) for n in range(2)] == ["mon_long", LONG_NAME]
    assert column(monitors, 2).replace(" ", "") == LONG_QUERY.replace(" ", "")  # folded at the spaces


def test_text_from_users_is_printed_literally_without_control_characters(cli: Cli) -> None:
    seed(cli.database_url, HOSTILE, [(f"mon_{n}", name, name) for n, name in enumerate(HOSTILE)])
    seed(cli.database_url, [], [("mon_\x1b[2J", "mallory", "clear the screen")])
    for args in (("tokens", "list"), ("monitors", "list")):
        piped = cli.run(*args).stdout
        wide = cli.run(*args, columns=400).stdout  # a terminal wide enough for nothing to fold
        assert not CONTROL.search(piped), piped
        assert not CONTROL.search(RICH_STYLE.sub("", wide)), wide
        for shown in (piped, wide):
            assert "[/oops]" in shown and "[bold]x" in shown
            assert "\ufffd[31mred" in shown
            assert "\ufffd]8;;http://evil\ufffdlink\ufffd]8;;\ufffd" in shown
            assert "c1\ufffd31mcsi\ufffdnel\ufffdsoh" in shown
    deleted = cli.run("tokens", "delete", "--id", hash_token("llmw_seed2")[:10])
    assert deleted.stdout == "Deleted the token of \ufffd[31mred.\n"
    deactivated = cli.run("monitors", "deactivate", "mon_\x1b[2J")
    assert deactivated.stdout.startswith("Deactivated monitor mon_\ufffd[2J of mallory")


def test_deactivating_an_unknown_monitor_exits_2_naming_it(cli: Cli) -> None:
    result = subprocess.run([str(BIN / "llm-wrapper"), "monitors", "deactivate", "mon_nope"], env=cli.env,
                            cwd=cli.cwd, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "llm-wrapper: error: no monitor 'mon_nope'\n"


def test_printable_replaces_control_characters_and_keeps_the_rest() -> None:
    assert printable("Zoë 東京 👩‍💻 [b]x[/b] ?") == "Zoë 東京 👩‍💻 [b]x[/b] ?"
    assert printable("a\x00b\tc\nd\x7fe\x85f\x9bg\u202eh") == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\ufffdg\ufffdh"
    assert printable(42) == "42"
