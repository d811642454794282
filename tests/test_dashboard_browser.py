"""End to end in a real browser: the dashboard on the sample data, page by page.

Starts the app as `stepscope dashboard` would (the same `streamlit run` command line, on
a free port of 127.0.0.1), opens every page in headless Chromium (Debian's `chromium`,
driven by Playwright), checks that no Streamlit exception block is shown and that the
Plotly charts rendered, and saves a full-page screenshot of each page to
`$STEPSCOPE_ARTIFACTS/screenshots` (default `artifacts/screenshots`).

Under `CI=true` a browser that cannot be started is a failure, not a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from stepscope.alerts.replay import replay
from stepscope.alerts.rules import default_rules_path, load_rules
from stepscope.alerts.state import AlertState
from stepscope.config import Config
from stepscope.dashboard import launch
from stepscope.demo import prepare_demo_store
from stepscope.store import Store
from stepscope.timeparse import parse_instant

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PAGE_TIMEOUT_MS = 180_000
VIEWPORT = {"width": 1500, "height": 1000}
EXCEPTION = '[data-testid="stException"]'
CHART = '[data-testid="stPlotlyChart"]'
PLOT = ".js-plotly-plot"
EMPTY = '[data-testid="ss-empty-state"]'


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


def screenshot_dir() -> Path:
    base = Path(os.environ.get("STEPSCOPE_ARTIFACTS") or "artifacts")
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # any launch failure means: no browser here
        playwright.stop()
        unavailable(f"cannot start {CHROMIUM}: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    """The bundled sample in a store of its own and its newest span time (as the demo
    does), with the default alert rules evaluated every 6 hours over its last 4 days."""
    summary = prepare_demo_store(tmp_path_factory.mktemp("browser") / "demo-store", Config())
    db, now = Path(summary["store"]), summary["now"]
    end = parse_instant(now)
    state = AlertState.for_store(db)
    try:
        rounds = [end - timedelta(hours=6 * k) for k in range(16, -1, -1)]
        for _ in replay(Store.open(db), load_rules(default_rules_path()), Config(), rounds,
                        state=state):
            pass
    finally:
        state.close()
    return db, now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard_url(sample_store, tmp_path_factory):
    db, now = sample_store
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "streamlit.log").open("w")
    process = subprocess.Popen(
        launch.streamlit_command("127.0.0.1", port),
        env=launch.dashboard_environment(str(db), None, now), stdout=log,
        stderr=subprocess.STDOUT, cwd=db.parent, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            pytest.fail(f"the dashboard did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.3)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    yield tab
    context.close()


def open_page(tab, url: str):
    """Load a page and wait until the app has finished its run."""
    tab.set_viewport_size(VIEWPORT)
    tab.goto(url)
    tab.wait_for_selector("h1", timeout=PAGE_TIMEOUT_MS)
    tab.wait_for_selector('[data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    tab.wait_for_timeout(500)
    tab.wait_for_selector('[data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)


def full_screenshot(tab, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    height = tab.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }")
    tab.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], int(height) + 40)})
    tab.wait_for_timeout(700)
    path = screenshot_dir() / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def charts_rendered(tab, expected: int) -> None:
    """At least `expected` Plotly charts, each drawn by plotly.js (an SVG inside)."""
    tab.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
        arg=expected, timeout=PAGE_TIMEOUT_MS)
    assert tab.locator(CHART).count() >= expected
    assert tab.locator(PLOT).count() >= expected


PAGES = [
    ("overview", "", "Overview", 1),
    ("cost", "cost", "Cost", 4),
    ("reliability", "reliability", "Reliability", 4),
    ("drift", "drift", "Drift", 1),
    ("alerts", "alerts", "Alerts", 1),
    ("trace-explorer", "traces", "Trace explorer", 0),
]


@pytest.mark.parametrize(("name", "path", "title", "charts"), PAGES, ids=[p[0] for p in PAGES])
def test_page_renders_in_the_browser(page, dashboard_url, name, path, title, charts):
    open_page(page, f"{dashboard_url}/{path}")
    assert page.locator("h1").first.inner_text().strip() == title
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()
    if name == "drift" and page.locator(EMPTY).count():
        charts = 0  # a quiet comparison shows its empty state instead of charts
    if charts:
        charts_rendered(page, charts)
    shot = full_screenshot(page, name)
    assert shot.stat().st_size > 10_000


def test_a_trace_opens_as_a_waterfall(page, dashboard_url, sample_store):
    from stepscope.analytics.explore import find_traces

    with Store.open(sample_store[0]).connect() as con:
        failing = find_traces(con, with_errors=True, order="cost", limit=1)
    trace_id = failing["trace_id"][0]
    open_page(page, f"{dashboard_url}/traces?trace={trace_id}&range=90d")
    assert page.locator(EXCEPTION).count() == 0
    charts_rendered(page, 1)
    assert trace_id in page.locator("body").inner_text()
    full_screenshot(page, "trace-waterfall")


def test_a_pasted_link_keeps_its_filters(page, dashboard_url, sample_store):
    from stepscope.analytics.explore import find_traces

    with Store.open(sample_store[0]).connect() as con:
        workflow = find_traces(con, limit=1)["workflow"][0]
    open_page(page, f"{dashboard_url}/cost?range=24h&workflow={workflow}")
    assert page.locator(EXCEPTION).count() == 0
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert workflow in sidebar.inner_text()
    assert sidebar.get_by_role("combobox", name="Time range").input_value() == "Last 24 hours"
    assert "range=24h" in page.url and f"workflow={workflow}" in page.url
    # moving to another page inside the app keeps the filters, in the widgets and the URL
    page.locator('[data-testid="stSidebarNav"] a', has_text="Reliability").click()
    page.wait_for_function("() => location.pathname.endsWith('/reliability')", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function("() => location.search.includes('range=24h')", timeout=PAGE_TIMEOUT_MS)
    assert f"workflow={workflow}" in page.url
    assert page.locator("h1").first.inner_text().strip() == "Reliability"
    assert page.locator(EXCEPTION).count() == 0
