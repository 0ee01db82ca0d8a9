"""The web pages in headless Chromium against the real gateway process.

Every page at desktop and phone width: 200, no console or page errors, nothing
loaded from anywhere but this server, no sideways scrolling on a phone, and a
screenshot of each (see tests/fixtures/browser.py for where they go). Then the
account page and the monitor form, driven like a user would.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from tests.fakes.parallel import API_KEY, FakeParallel
from tests.fakes.server import ThreadedServer, free_port
from tests.fixtures.parallel import parallel_config
from tests.gateway_process import GatewayProcess

PAGES = {
    "index": "/",
    "create-monitor": "/create-monitor",
    "account": "/account",
    "payment-success": "/payment/success",
    "payment-error": "/payment/error",
    "payment-cancel": "/payment/cancel",
}


@pytest.fixture(scope="module")
def parallel() -> Iterator[FakeParallel]:
    fake = FakeParallel().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, parallel: FakeParallel) -> Iterator[GatewayProcess]:
    """The gateway with one chat provider and monitors, both at local fakes."""
    provider = ThreadedServer(minimal_openai_app()).start()
    workdir: Path = tmp_path_factory.mktemp("pages")
    env = {KEY_ENV: "sk-fake-pages", "PARALLELAI_API_KEY": API_KEY, "PARALLEL_BASE_URL": parallel.url}
    config = {**minimal_openai_config(provider.url), **parallel_config(parallel.url)}
    process = GatewayProcess(workdir, env, config=config)
    try:
        yield process.start()
    finally:
        process.stop()
        provider.stop()


def visit(page: Page, site: GatewayProcess, path: str) -> None:
    """Open a page, note every request it makes, and check the basics of the layout."""
    page.requested = []  # type: ignore[attr-defined]
    page.on("request", lambda request: page.requested.append(request.url))  # type: ignore[attr-defined]
    response = page.goto(site.url + path, wait_until="load")
    assert response is not None and response.status == 200, path
    assert response.headers["content-type"].startswith("text/html")
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("h1")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.locator("footer")).to_be_visible()
    expect(page).to_have_title(re.compile(r" · llm-wrapper$"))


def settled(page: Page) -> None:
    """Fonts and styles applied, nothing left in flight; then no problems may have been reported."""
    page.wait_for_load_state("networkidle")
    assert page.problems == [], page.problems  # type: ignore[attr-defined]


def chat(site: GatewayProcess, token: str) -> None:
    answer = httpx.post(
        f"{site.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "ping"}]},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def me(site: GatewayProcess, token: str) -> dict:
    answer = httpx.get(f"{site.url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def monitors(site: GatewayProcess, token: str) -> list[dict]:
    answer = httpx.get(f"{site.url}/v1/monitors", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def page_errors(page: Page) -> list[str]:
    """Uncaught script errors (failed API calls also log console errors, which are expected here)."""
    return [p for p in page.problems if p.startswith("page error")]  # type: ignore[attr-defined]


def create_monitor(page: Page, query: str, cadence: str = "Daily", token: str | None = None) -> None:
    if token is not None:
        page.get_by_label("API token").fill(token)
    page.get_by_label("What to watch").fill(query)
    page.get_by_label(cadence).check()
    page.get_by_role("button", name="Create monitor").click()


def assert_token_hidden(page: Page, token: str) -> None:
    assert token not in page.url
    assert token not in page.content()
    assert token not in page.evaluate("() => document.body.innerText")
    assert page.locator("#token").input_value() == ""
    assert page.evaluate("() => sessionStorage.length + localStorage.length + document.cookie.length") == 0


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly_on_desktop_and_phone(page: Page, phone_page: Page, site: GatewayProcess,
                                                  screenshots, name: str) -> None:
    for view, tab in (("desktop", page), ("phone", phone_page)):
        visit(tab, site, PAGES[name])
        settled(tab)
        off_site = [url for url in tab.requested if not url.startswith(site.url + "/")]  # type: ignore[attr-defined]
        assert off_site == [], off_site
        stylesheet = tab.evaluate("() => getComputedStyle(document.querySelector('.site-header')).borderBottomStyle")
        assert stylesheet == "solid", "the stylesheet did not apply"
        if view == "phone":
            overflow = tab.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at 375px"
        screenshots.take(tab, f"{view}-{name}")


def test_index_lists_the_served_models_and_this_servers_base_url(page: Page, site: GatewayProcess) -> None:
    visit(page, site, "/")
    models = page.locator("table.models")
    expect(models).to_contain_text(MODEL)
    expect(models).to_contain_text("speed")
    expect(page.locator("#base-url")).to_have_text(f"{site.url}/v1")
    expect(page.locator("#snippet-curl")).to_contain_text(f"curl {site.url}/v1/chat/completions")
    expect(page.locator("#snippet-python")).to_contain_text(f'OpenAI(base_url="{site.url}/v1"')
    expect(page.locator("#snippet-python")).to_contain_text(f'model="{MODEL}"')
    for path in ("/create-monitor", "/account"):
        expect(page.locator(f"main a[href='{path}']").first).to_be_visible()
    settled(page)


def test_pages_send_a_strict_content_security_policy(site: GatewayProcess) -> None:
    answer = httpx.get(site.url + "/account", timeout=10)
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_account_shows_what_v1_me_reports(page: Page, phone_page: Page, site: GatewayProcess,
                                          screenshots) -> None:
    token = site.add_token("pat", rate_limit=25, expiry="2099-03-04 05:06:07")
    chat(site, token)
    chat(site, token)
    for view, tab in (("desktop", page), ("phone", phone_page)):
        visit(tab, site, "/account")
        tab.get_by_label("API token").fill(token)
        tab.get_by_role("button", name="Show my account").click()
        expect(tab.locator("#acct-username")).to_have_text("pat")
        reported = me(site, token)
        assert (reported["requests_today"], reported["rate_limit"], reported["lifetime_requests"]) == (2, 25, 2)
        expect(tab.locator("#acct-today")).to_have_text(str(reported["requests_today"]))
        expect(tab.locator("#acct-limit")).to_have_text(str(reported["rate_limit"]))
        expect(tab.locator("#acct-remaining")).to_have_text(str(reported["remaining_today"]))
        expect(tab.locator("#acct-lifetime")).to_have_text(str(reported["lifetime_requests"]))
        expect(tab.locator("#acct-expiry")).to_have_text("2099-03-04")
        expect(tab.locator("#acct-expiry-note")).to_have_text("At 05:06 UTC. More than a year from now.")
        expect(tab.locator("#acct-waiting")).to_have_text(str(reported["waiting_updates"]))
        expect(tab.locator("#acct-no-monitor")).to_be_visible()
        expect(tab.locator("#token-held")).to_be_visible()
        assert_token_hidden(tab, token)
        screenshots.take(tab, f"{view}-account-filled")
        assert tab.problems == [], tab.problems  # type: ignore[attr-defined]
    chat(site, token)
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#acct-today")).to_have_text("3")
    assert me(site, token)["requests_today"] == 3, "looking at the account must not count"


def test_account_charts_the_last_30_days_and_the_budget(page: Page, phone_page: Page, site: GatewayProcess,
                                                         screenshots) -> None:
    added = site.cli("tokens", "add", "--username", "val", "--expiry", "2099-01-01 00:00:00", "--rate-limit", "50",
                     "--budget-usd", "1", "--budget-period", "day", "--json")
    token = json.loads(added.stdout)["token"]
    for _ in range(3):
        chat(site, token)
    today = datetime.now(UTC).date().isoformat()
    deadline = time.monotonic() + 10
    expected = pytest.approx(3 * (0.15 + 0.6) / 1e6)
    while me(site, token)["spent_usd"] != expected and time.monotonic() < deadline:  # flushed about every second
        time.sleep(0.2)
    assert me(site, token)["spent_usd"] == expected
    for view, tab in (("desktop", page), ("phone", phone_page)):
        visit(tab, site, "/account")
        tab.get_by_label("API token").fill(token)
        tab.get_by_role("button", name="Show my account").click()
        expect(tab.locator("#acct-usage-summary")).to_have_text("3 requests, <$0.01 in the last 30 days (UTC days).")
        bars = tab.locator("#acct-chart-requests svg rect")
        expect(bars).to_have_count(30)
        assert bars.last.locator("title").text_content() == f"{today}: 3"
        assert float(bars.last.get_attribute("height")) > 100 and bars.first.get_attribute("height") == "0.00"
        expect(tab.locator("#acct-chart-cost svg rect")).to_have_count(30)
        expect(tab.get_by_role("img", name=re.compile("^Requests per day: 3 in all over 30 days"))).to_be_visible()
        expect(tab.locator("#acct-budget-box")).to_be_visible()
        expect(tab.locator("#acct-budget")).to_have_text("$1.00")
        expect(tab.locator("#acct-budget-period")).to_have_text("today")
        expect(tab.locator("#acct-spent")).to_have_text("<$0.01")
        cost_title = tab.locator("#acct-chart-cost svg rect").last.locator("title").text_content()
        assert cost_title == f"{today}: $0.0000023"
        settled(tab)
        off_site = [url for url in tab.requested if not url.startswith(site.url + "/")]  # type: ignore[attr-defined]
        assert off_site == [], off_site
        if view == "phone":
            assert tab.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
        tab.locator(".usage-box").scroll_into_view_if_needed()
        screenshots.take(tab, f"{view}-account-chart")
    assert me(site, token)["requests_today"] == 3, "looking at the usage must not count"


def test_account_works_from_the_keyboard(page: Page, site: GatewayProcess) -> None:
    token = site.add_token("kim", rate_limit=9)
    visit(page, site, "/account")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "token":
            break
    assert page.evaluate("() => document.activeElement.id") == "token"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused field shows no focus ring"
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page.locator("#acct-limit")).to_have_text("9")
    assert_token_hidden(page, token)


def test_account_explains_a_wrong_token(page: Page, site: GatewayProcess, screenshots) -> None:
    visit(page, site, "/account")
    page.get_by_label("API token").fill("llmw_this-token-does-not-exist")
    page.get_by_role("button", name="Show my account").click()
    expect(page.get_by_role("alert")).to_contain_text("That API token was not recognised")
    expect(page.locator("#account")).to_be_hidden()
    expect(page.locator("#token-held")).to_be_hidden()
    expect(page.locator("#token")).to_be_focused()
    screenshots.take(page, "desktop-account-wrong-token")


def test_create_monitor_shows_it_then_says_the_next_one_replaced_it(
    page: Page, phone_page: Page, site: GatewayProcess, parallel: FakeParallel, screenshots
) -> None:
    token = site.add_token("mona")
    visit(page, site, "/create-monitor")
    create_monitor(page, "New PostgreSQL releases", "Weekly", token)
    expect(page.locator("#result")).to_be_visible()
    first = monitors(site, token)
    assert len(first) == 1 and first[0]["active"]
    first_id = first[0]["monitor_id"]
    assert parallel.monitors[first_id]["frequency"] == "1w"
    expect(page.locator("#result-id")).to_have_text(first_id)
    expect(page.locator("#result-query")).to_have_text("New PostgreSQL releases")
    expect(page.locator("#result-cadence")).to_have_text("Every week")
    expect(page.locator("#result-replaced")).to_be_hidden()
    assert_token_hidden(page, token)
    screenshots.take(page, "desktop-create-monitor-created")

    # The token stays in memory: the second monitor needs only the new query.
    create_monitor(page, "Rust compiler releases", "Hourly")
    expect(page.locator("#result-replaced")).to_be_visible()
    expect(page.locator("#result-replaced")).to_contain_text(f"replaced your previous monitor ({first_id})")
    active = [m for m in monitors(site, token) if m["active"]]
    assert len(active) == 1 and active[0]["monitor_id"] != first_id
    expect(page.locator("#result-id")).to_have_text(active[0]["monitor_id"])
    expect(page.locator("#result-cadence")).to_have_text("Every hour")
    assert_token_hidden(page, token)
    screenshots.take(page, "desktop-create-monitor-replaced")
    assert page.problems == [], page.problems  # type: ignore[attr-defined]
    for log in (site.log_path, site.workdir / "llm_proxy.log"):
        assert token not in (log.read_text() if log.exists() else ""), f"the token is in {log.name}"

    # The account page shows that monitor (a new page: the token must be given again).
    visit(phone_page, site, "/account")
    phone_page.get_by_label("API token").fill(token)
    phone_page.get_by_role("button", name="Show my account").click()
    expect(phone_page.locator("#acct-monitor-query")).to_have_text("Rust compiler releases")
    expect(phone_page.locator("#acct-monitor-frequency")).to_have_text("Every hour")
    expect(phone_page.locator("#acct-monitor-id")).to_have_text(active[0]["monitor_id"])
    assert me(site, token)["active_monitor"]["monitor_id"] == active[0]["monitor_id"]
    assert_token_hidden(phone_page, token)
    screenshots.take(phone_page, "phone-account-with-monitor")


def test_create_monitor_explains_a_wrong_token(page: Page, site: GatewayProcess, parallel: FakeParallel,
                                               screenshots) -> None:
    before = len(parallel.calls_to("POST", "/v1/monitors"))
    visit(page, site, "/create-monitor")
    create_monitor(page, "Anything at all", token="llmw_wrong-token-for-this-test")
    expect(page.get_by_role("alert")).to_have_text(re.compile(r"^That API token was not recognised"))
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#token")).to_be_focused()
    expect(page.locator("#token-held")).to_be_hidden()
    assert len(parallel.calls_to("POST", "/v1/monitors")) == before
    assert page_errors(page) == []
    screenshots.take(page, "desktop-create-monitor-wrong-token")


def test_create_monitor_asks_for_a_query(page: Page, phone_page: Page, site: GatewayProcess,
                                         parallel: FakeParallel, screenshots) -> None:
    token = site.add_token("quinn")
    before = len(parallel.calls_to("POST", "/v1/monitors"))
    visit(phone_page, site, "/create-monitor")
    create_monitor(phone_page, "   ", token=token)
    expect(phone_page.get_by_role("alert")).to_contain_text("Please describe what to watch")
    expect(phone_page.locator("#query")).to_be_focused()
    expect(phone_page.locator("#query")).to_have_attribute("aria-invalid", "true")
    assert len(parallel.calls_to("POST", "/v1/monitors")) == before
    assert_token_hidden(phone_page, token)
    screenshots.take(phone_page, "phone-create-monitor-missing-query")
    assert phone_page.problems == [], phone_page.problems  # type: ignore[attr-defined]

    # The server's own 400 for an empty query reads the same, through the page's own code.
    visit(page, site, "/create-monitor")
    said = page.evaluate(
        """async (token) => {
            const answer = await LLMW.api("POST", "/v1/monitors", token, {query: "", cadence: "daily"});
            return [answer.status, LLMW.explain(answer, "create the monitor")];
        }""",
        token,
    )
    assert said == [400, "Please describe what to watch — the “What to watch” field is empty."]
    assert monitors(site, token) == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PARALLEL_BASE_URL": "closed"}, r"^We could not reach Parallel, the service that runs monitors"),
        ({"PARALLELAI_API_KEY": None}, r"^Monitors are not available on this server right now"),
    ],
    ids=["parallel-unreachable", "parallel-not-configured"],
)
def test_create_monitor_explains_when_parallel_cannot_be_used(
    phone_page: Page, monitor_gateway, screenshots, env: dict, expected: str
) -> None:
    if env.get("PARALLEL_BASE_URL") == "closed":
        env = {"PARALLEL_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    gateway = monitor_gateway(**env)
    token = gateway.add_token("ursula")
    visit(phone_page, gateway, "/create-monitor")
    create_monitor(phone_page, "Solar eclipse forecasts", token=token)
    expect(phone_page.get_by_role("alert")).to_have_text(re.compile(expected))
    expect(phone_page.locator("#result")).to_be_hidden()
    expect(phone_page.locator("#token-held")).to_be_visible()
    assert_token_hidden(phone_page, token)
    assert page_errors(phone_page) == []
    name = "unreachable" if "PARALLEL_BASE_URL" in env else "not-configured"
    screenshots.take(phone_page, f"phone-create-monitor-{name}")
