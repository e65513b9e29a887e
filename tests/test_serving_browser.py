"""The `sidrec serve` web page in a real headless Chromium: search, history, filters, recommendations, errors.

Needs selenium and Debian's chromium + chromedriver (skipped otherwise). `SIDREC_SCREENSHOT=1` also
saves docs/img/serve-page.png (the page with a history and its recommendations).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="the browser test needs selenium")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from .conftest import running_server  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip(f"the browser test needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

pytestmark = pytest.mark.slow
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "serve-page.png"
WAIT_S = 15


@pytest.fixture(scope="module")
def base_url(serving_runs):
    """A real uvicorn server answering from the tiny SFT run, in a background thread."""
    from sidrec.serving.app import create_app
    from sidrec.serving.config import ServeConfig
    from sidrec.serving.loading import load_served

    with running_server(create_app(load_served(serving_runs["sft"], device="cpu"), ServeConfig())) as (url, _):
        yield url


@pytest.fixture(scope="module")
def driver():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # never let Selenium Manager download a browser or driver
        d = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    # a 1200x900 viewport (headless Chromium's --window-size counts its hidden window frame too)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    yield d
    d.quit()


@pytest.fixture
def page(driver, base_url):
    """The page freshly loaded, with its model info and categories in."""
    driver.get(base_url + "/")
    wait(driver).until(lambda d: "sft" in d.find_element(By.ID, "model-info").text)
    wait(driver).until(lambda d: len(Select(d.find_element(By.ID, "categories")).options) > 0)
    return driver


# ------------------------------------------------------------------ helpers
def wait(driver):
    return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))


def search(driver, text: str, expect: str) -> None:
    box = driver.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#results button.add[data-item-id="{expect}"]'))


def add(driver, item_id: str) -> None:
    n = len(history(driver))
    driver.find_element(By.CSS_SELECTOR, f'#results button.add[data-item-id="{item_id}"]').click()
    wait(driver).until(lambda d: len(history(d)) == n + 1)


def history(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#history li'), li => li.dataset.itemId);")


def set_k(driver, k: int | str) -> None:
    box = driver.find_element(By.ID, "k")
    box.clear()
    box.send_keys(str(k))


def seq(driver) -> int:
    return int(driver.find_element(By.ID, "recs").get_attribute("data-seq") or 0)


def answer_for(driver, *, after: int = 0, **expected) -> tuple[str, dict]:
    """Wait until #recs shows an answer (numbered above `after`) to a request with these fields."""
    def done(d):
        table = d.find_element(By.ID, "recs")
        state = table.get_attribute("data-state")
        if state not in ("ready", "error") or int(table.get_attribute("data-seq") or 0) <= after:
            return False
        body = json.loads(table.get_attribute("data-query") or "{}")
        return (state, body) if all(body.get(k) == v for k, v in expected.items()) else False

    return wait(driver).until(done, message=f"no answer to a request with {expected}")


def rows(driver) -> list[dict[str, str]]:
    """The table's rows, read in one script (so a re-render cannot leave stale elements half-read)."""
    cells = driver.execute_script(
        "return Array.from(document.querySelectorAll('#recs tbody tr'),"
        " tr => [tr.dataset.itemId, ...Array.from(tr.cells, td => td.textContent.trim())]);")
    return [{"item_id": c[0], "rank": c[1], "title": c[2], "id_cell": c[3], "sid": c[4], "score": c[5]}
            for c in cells]


# ------------------------------------------------------------------ tests
def test_search_history_and_recommendations(page):
    d = page
    info = d.find_element(By.ID, "model-info").text
    assert "sft" in info and "chain" in info and "40" in info

    search(d, "chain item 3", expect="i3")
    hits = [b.get_attribute("data-item-id") for b in d.find_elements(By.CSS_SELECTOR, "#results button.add")]
    assert hits[:3] == ["i3", "i13", "i23"] and set(hits) <= {"i3", "i13", "i23", *(f"i{j}" for j in range(30, 40))}
    for item in ("i3", "i13", "i23"):
        add(d, item)
    assert history(d) == ["i3", "i13", "i23"]
    assert "Chain item 13" in d.find_element(By.ID, "history").text
    assert not d.find_element(By.CSS_SELECTOR, '#results button.add[data-item-id="i3"]').is_enabled()

    d.find_element(By.CSS_SELECTOR, '#history li[data-item-id="i13"] button.remove').click()
    wait(d).until(lambda d: history(d) == ["i3", "i23"])
    add(d, "i33")
    assert history(d) == ["i3", "i23", "i33"]

    set_k(d, 7)
    before = seq(d)
    d.find_element(By.ID, "recommend").click()
    state, body = answer_for(d, after=before, history=["i3", "i23", "i33"], k=7)
    assert state == "ready" and "categories" not in body and "exclude_history" not in body
    recs = rows(d)
    assert len(recs) == 7
    assert [r["rank"] for r in recs] == [str(j) for j in range(1, 8)]
    assert len({r["item_id"] for r in recs}) == 7
    for r in recs:
        assert r["title"] == f"Chain item {r['item_id'][1:]}" and r["id_cell"] == r["item_id"]
        assert r["sid"].startswith("<a_") and float(r["score"]) <= 0
    timings = d.find_element(By.ID, "timings").text
    assert "model" in timings and "ms" in timings
    assert not d.find_element(By.ID, "error").is_displayed()
    if os.environ.get("SIDREC_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        d.execute_script("document.getElementById('results').scrollTop = 0")
        d.save_screenshot(str(SCREENSHOT))

    d.find_element(By.ID, "clear").click()
    wait(d).until(lambda d: history(d) == [] and not rows(d))
    assert d.find_element(By.ID, "recs").get_attribute("data-state") == "idle"


def test_category_and_history_filters(page):
    d = page
    options = {o.get_attribute("value") for o in Select(d.find_element(By.ID, "categories")).options}
    assert options == {"even", "odd", "group 0", "group 1", "group 2", "group 3"}
    assert d.find_element(By.ID, "categories").is_displayed()

    search(d, "chain item 2", expect="i23")
    add(d, "i23")
    add(d, "i24")
    answer_for(d, history=["i23", "i24"], k=10)  # re-recommended on its own when the history changed

    Select(d.find_element(By.ID, "categories")).select_by_value("group 2")
    state, _ = answer_for(d, history=["i23", "i24"], categories=["group 2"])
    group_2 = {f"i{j}" for j in range(20, 30)}
    assert state == "ready"
    recs = [r["item_id"] for r in rows(d)]
    assert set(recs) == group_2 and len(recs) == 10  # k=10 and group 2 holds 10 items
    assert "10 items allowed" in d.find_element(By.ID, "timings").text

    d.find_element(By.ID, "exclude-history").click()
    state, _ = answer_for(d, categories=["group 2"], exclude_history=True)
    recs = [r["item_id"] for r in rows(d)]
    assert state == "ready" and set(recs) == group_2 - {"i23", "i24"} and len(recs) == 8

    Select(d.find_element(By.ID, "categories")).select_by_value("odd")  # group 2 or odd
    answer_for(d, categories=["odd", "group 2"], exclude_history=True)
    recs = [r["item_id"] for r in rows(d)]
    assert len(recs) == 10 and not {"i23", "i24"} & set(recs)
    assert all(i in group_2 or int(i[1:]) % 2 == 1 for i in recs)


def test_server_errors_are_shown(page):
    d = page
    error = d.find_element(By.ID, "error")
    search(d, "chain item 5", expect="i5")
    add(d, "i5")
    answer_for(d, history=["i5"], k=10)
    assert not error.is_displayed()

    set_k(d, 500)  # above the server's max_k (100): a 422
    state, _ = answer_for(d, k=500)
    assert state == "error"
    wait(d).until(lambda d: error.is_displayed())
    assert "at most 100" in error.text

    set_k(d, 0)  # refused by the request schema (k ≥ 1): pydantic's message, with the field
    answer_for(d, k=0)
    assert error.is_displayed() and "greater than or equal to 1" in error.text and error.text.startswith("k")

    set_k(d, 3)
    state, _ = answer_for(d, k=3)
    assert state == "ready" and len(rows(d)) == 3
    assert not error.is_displayed()
