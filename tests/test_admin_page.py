"""The operator console `/admin` in headless Chromium against the real gateway process, at
desktop and phone width: the key typed in (never in a URL, storage or cookie), tokens listed,
created (secret shown once), changed and deleted, usage charts from real requests, provider
health after a failing upstream, monitors; and the page saying the console is off without a key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from tests.fakes.parallel import API_KEY, FakeParallel
from tests.fakes.server import ThreadedServer, free_port
from tests.fixtures.parallel import parallel_config
from tests.gateway_process import GatewayProcess

ADMIN_KEY = "admin-key-console-page-0123456789"
BROKEN = "broken-model"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The gateway with the admin key, a working provider, one on a closed port, and monitors;
    some real traffic already through it."""
    provider = ThreadedServer(minimal_openai_app()).start()
    parallel = FakeParallel().start()
    workdir: Path = tmp_path_factory.mktemp("console")
    env = {KEY_ENV: "sk-fake-console", "PARALLELAI_API_KEY": API_KEY, "PARALLEL_BASE_URL": parallel.url,
           "LLM_WRAPPER_ADMIN_KEY": ADMIN_KEY}
    down = {"name": "Down", "base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key_env": KEY_ENV,
            "supported_models": [BROKEN], "payload_extra_parameters": {}}
    config = {**minimal_openai_config(provider.url), "down": down, **parallel_config(parallel.url)}
    process = GatewayProcess(workdir, env, config=config)
    try:
        process.start()
        traffic(process)
        yield process
    finally:
        process.stop()
        parallel.stop()
        provider.stop()


def traffic(site: GatewayProcess) -> None:
    """Chats by two users (one of them to the broken provider) and a monitor."""
    for user, times in (("alice", 3), ("bob", 1)):
        token = site.add_token(user)
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(times):
            answer = httpx.post(f"{site.url}/v1/chat/completions", headers=headers, timeout=20,
                                json={"model": MODEL, "messages": [{"role": "user", "content": "ping"}]})
            assert answer.status_code == 200, answer.text
    failed = httpx.post(f"{site.url}/v1/chat/completions", headers=headers, timeout=20,
                        json={"model": BROKEN, "messages": [{"role": "user", "content": "ping"}]})
    assert failed.status_code == 502, failed.text
    created = httpx.post(f"{site.url}/v1/monitors", headers=headers, timeout=20,
                         json={"query": "New releases of the Rust compiler", "cadence": "daily"})
    assert created.status_code == 201, created.text


def open_console(page: Page, site: GatewayProcess) -> None:
    page.goto(site.url + "/admin", wait_until="load")
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Open the console").click()
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#provider-rows tr").filter(has_text=BROKEN)).to_have_count(1)


def assert_key_hidden(page: Page) -> None:
    assert ADMIN_KEY not in page.url
    assert ADMIN_KEY not in page.content()
    assert page.locator("#token").input_value() == ""
    assert page.evaluate("() => sessionStorage.length + localStorage.length + document.cookie.length") == 0
    assert page.context.cookies() == []


@pytest.mark.parametrize("view", ["desktop", "phone"])
def test_the_console_tour(page: Page, phone_page: Page, console: GatewayProcess, screenshots, view: str) -> None:
    tab = page if view == "desktop" else phone_page
    sent: list[str] = []
    tab.on("request", lambda request: sent.append(request.url))
    tab.on("dialog", lambda dialog: dialog.accept())
    open_console(tab, console)
    assert_key_hidden(tab)
    assert all(ADMIN_KEY not in url for url in sent)
    assert all(url.startswith(console.url) for url in sent)

    # provider health: the working deployment and the one on a closed port
    rows = tab.locator("#provider-rows tr")
    expect(rows.filter(has_text="down")).to_contain_text("100%")
    expect(rows.filter(has_text="openai")).to_contain_text("ok")
    # usage: the day's bar and the top tables from the real requests
    expect(tab.locator("#top-users tr").first).to_contain_text("alice")
    expect(tab.locator("#top-users tr").first).to_contain_text("3")
    expect(tab.locator("#top-models")).to_contain_text(MODEL)
    expect(tab.locator("#chart-requests svg rect")).to_have_count(30)
    expect(tab.locator("#usage-summary")).to_contain_text("5 requests")  # the failed one too (as an error)
    tab.get_by_label("Period", exact=True).select_option("7")
    expect(tab.locator("#chart-tokens svg rect")).to_have_count(7)
    # monitors
    expect(tab.locator("#monitor-rows tr")).to_contain_text("New releases of the Rust compiler")
    expect(tab.locator("#monitor-rows tr")).to_contain_text("bob")
    screenshots.take(tab, f"{view}-admin-console")

    # tokens: search, create (secret once), change the limit, delete
    tab.get_by_label("Search by username").fill("ali")
    expect(tab.locator("#token-rows tr")).to_have_count(1)
    tab.get_by_label("Search by username").fill("")
    user = f"carol-{view}"
    tab.get_by_text("Create a token").click()
    tab.get_by_label("Username", exact=True).fill(user)
    tab.locator("#new-expiry").fill("2031-01-01 00:00:00")
    tab.locator("#new-limit").fill("50")
    screenshots.take(tab, f"{view}-admin-create")
    tab.get_by_role("button", name="Create the token").click()
    expect(tab.locator("#secret-box")).to_be_visible()
    secret = tab.locator("#secret-value").inner_text()
    assert secret.startswith("llmw_")
    me = httpx.get(f"{console.url}/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=10).json()
    assert me["username"] == user and me["rate_limit"] == 50
    screenshots.take(tab, f"{view}-admin-secret")
    tab.get_by_role("button", name="Done").click()
    expect(tab.locator("#secret-box")).to_be_hidden()
    assert secret not in tab.content()

    row = tab.locator("#token-rows tr").filter(has_text=user)
    expect(row).to_contain_text("0 / 50")
    row.get_by_role("button", name="Edit").click()
    expect(tab.locator("#edit-limit")).to_be_focused()
    tab.locator("#edit-limit").fill("75")
    tab.locator("#edit-budget").fill("5")
    screenshots.take(tab, f"{view}-admin-edit")
    tab.get_by_role("button", name="Save changes").click()
    expect(row).to_contain_text("0 / 75")
    expect(row).to_contain_text("$5.00 a month")
    me = httpx.get(f"{console.url}/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=10).json()
    assert me["rate_limit"] == 75 and me["budget_usd"] == 5

    row.get_by_role("button", name="Delete").click()
    expect(tab.locator("#token-rows tr").filter(has_text=user)).to_have_count(0)
    gone = httpx.get(f"{console.url}/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert gone.status_code == 401

    assert_key_hidden(tab)
    assert all(ADMIN_KEY not in url for url in sent)
    if view == "phone":
        assert tab.evaluate("() => document.documentElement.scrollWidth") <= 375
    tab.wait_for_load_state("networkidle")
    assert tab.problems == []  # type: ignore[attr-defined]


def test_the_console_works_from_the_keyboard(page: Page, console: GatewayProcess) -> None:
    page.goto(console.url + "/admin", wait_until="load")
    page.get_by_label("Admin key").focus()
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    expect(page.locator("#console")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Tokens")).to_be_focused()
    row = page.locator("#token-rows tr").filter(has_text="bob")
    row.get_by_role("button", name="Edit").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#edit-limit")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("1001")
    page.keyboard.press("Enter")
    expect(row).to_contain_text("1 / 1,001")
    expect(row.get_by_role("button", name="Edit")).to_be_focused()
    expect(page.locator("#edit-form")).to_be_hidden()
    assert_key_hidden(page)
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_wrong_key_is_refused_and_forgotten(page: Page, console: GatewayProcess, screenshots) -> None:
    page.goto(console.url + "/admin", wait_until="load")
    page.get_by_label("Admin key").fill("not-the-key")
    page.get_by_role("button", name="Open the console").click()
    expect(page.locator("#form-error")).to_contain_text("admin key was not accepted")
    expect(page.locator("#console")).to_be_hidden()
    expect(page.get_by_label("Admin key")).to_be_focused()
    screenshots.take(page, "desktop-admin-wrong-key")


def test_without_an_admin_key_the_page_says_the_console_is_off(
    phone_page: Page, tmp_path: Path, screenshots
) -> None:
    process = GatewayProcess(tmp_path, {}, config=minimal_openai_config("http://127.0.0.1:9")).start()
    try:
        response = phone_page.goto(process.url + "/admin", wait_until="load")
        assert response is not None and response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        expect(phone_page.locator("#console-off")).to_contain_text("LLM_WRAPPER_ADMIN_KEY")
        expect(phone_page.locator("#admin-form")).to_have_count(0)
        screenshots.take(phone_page, "phone-admin-off")
        assert phone_page.problems == []  # type: ignore[attr-defined]
    finally:
        process.stop()
