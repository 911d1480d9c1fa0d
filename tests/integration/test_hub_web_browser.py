"""The hub's web pages in a real headless Chromium (Debian's chromium + chromium-driver via
Selenium): what a person does — sign in and out, search, click down folders, read
previews, press copy buttons — and what an attacker tries (forged forms, HTML in names).

Selenium is pointed at /usr/bin/chromedriver and /usr/bin/chromium explicitly, so it never
looks for (or downloads) a browser of its own. ``make test`` installs both when missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import HubFactory
from tests.integration.web_util import BIG_DIRS, BIG_PER_DIR, BIG_ROOT, XSS_DESCRIPTION, XSS_FILE, Seeded, seed

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("DSHUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DSHUB_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


@pytest.fixture(scope="module")
def site(module_hub: HubFactory) -> Seeded:
    return seed(module_hub("--anonymous-read"), big=True)


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    """One headless Chromium for the module, with a fresh profile."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("browser tests need selenium (pip install -e '.[test]')")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager never fetches anything
    profile = tempfile.mkdtemp(prefix="dshub-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(chrome: Any, site: Seeded) -> Iterator[Any]:
    """The browser, signed out, with no cookies of the hub."""
    chrome.get(site.hub.url + "/static/style.css")
    chrome.delete_all_cookies()
    yield chrome
    chrome.delete_all_cookies()


@contextmanager
def navigating(driver: Any) -> Iterator[None]:
    """Wait until what the block does (a click, Enter) has replaced the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    old = driver.find_element(By.TAG_NAME, "html")
    yield

    def replaced(_d: Any) -> bool:
        # Chromium reports a node of the old page either as stale or as "does not belong
        # to the document", depending on timing: both mean the page was replaced.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(driver, 20).until(replaced)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def click_link(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    with navigating(driver):
        driver.find_element(By.LINK_TEXT, text).click()


def sign_in(driver: Any, site: Seeded, token: str) -> None:
    driver.get(site.hub.url + "/")
    with navigating(driver):
        by_css(driver, "#signin-link").click()
    by_css(driver, "#token").send_keys(token)
    with navigating(driver):
        by_css(driver, "#signin-submit").click()
    assert "Signed in as" in by_css(driver, ".account").text


def dataset_names(driver: Any) -> list[str]:
    return [a.text for a in all_css(driver, "#datasets td.name > a")]


def h1(driver: Any) -> str:
    return str(by_css(driver, "h1").text)


def test_visitor_owner_and_another_user(page: Any, site: Seeded) -> None:
    url = site.hub.url
    page.get(url + "/")
    assert set(dataset_names(page)) == {"alice/big", "alice/taxi", "bob/weather"}
    page.get(url + "/datasets/alice/secret")
    assert h1(page) == "Not found"
    sign_in(page, site, site.alice)
    assert "alice/secret" in dataset_names(page)
    page.get(url + "/datasets/alice/secret")
    assert h1(page) == "alice / secret"
    assert all_css(page, "#edit-form")  # the owner's edit form
    with navigating(page):
        by_css(page, "#signout").click()
    assert "Sign in" in by_css(page, ".account").text
    assert "alice/secret" not in dataset_names(page)
    sign_in(page, site, site.bob)
    page.get(url + "/datasets/alice/secret")
    assert h1(page) == "Not found"
    page.get(url + "/datasets/alice/taxi")
    assert h1(page) == "alice / taxi" and not all_css(page, "#edit-form")


def test_search_box_and_sort(page: Any, site: Seeded) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    page.get(site.hub.url + "/")
    box = by_css(page, "#q")
    with navigating(page):
        box.send_keys("oslo", Keys.ENTER)
    assert dataset_names(page) == ["bob/weather"]
    assert "1 dataset matching" in by_css(page, "#result-count").text
    by_css(page, "#q").clear()
    with navigating(page):
        by_css(page, "#q").send_keys("tag:nyc", Keys.ENTER)
    assert dataset_names(page) == ["alice/taxi"]
    by_css(page, "#q").clear()
    with navigating(page):
        by_css(page, "#q").send_keys(Keys.ENTER)
    # The sort menu applies on change (app.js submits the form).
    with navigating(page):
        Select(by_css(page, "#sort")).select_by_value("name")
    assert "sort=name" in page.current_url
    assert dataset_names(page) == ["alice/big", "alice/taxi", "bob/weather"]


def test_navigate_to_files_two_folders_down_with_csv_and_parquet_previews(page: Any, site: Seeded) -> None:
    page.get(site.hub.url + "/")
    click_link(page, "alice/taxi")
    click_link(page, "zones/")
    click_link(page, "lookup/")
    click_link(page, "zones.parquet")
    assert by_css(page, "#file-name").text == "zones.parquet"
    schema = [td.text for td in all_css(page, "#schema td")]
    assert schema == ["zone_id", "int64", "borough", "string", "trips", "int64"]
    headers = [th.text for th in all_css(page, "#preview-table th")]
    assert headers == ["zone_id", "borough", "trips"]
    rows = all_css(page, "#preview-table tbody tr")
    assert len(rows) == 50
    assert [td.text for td in all_css(rows[1], "td")] == ["1", "Queens", "4"]
    assert "first 50 of 500 rows" in by_css(page, "#preview-note").text
    # Up through the breadcrumbs, then down to a CSV two folders below the root.
    click_link(page, "taxi@v1")
    click_link(page, "2022/")
    click_link(page, "01/")
    click_link(page, "trips.csv")
    headers = [th.text for th in all_css(page, "#preview-table th")]
    assert headers == ["tpep_pickup_datetime", "trip_distance", "fare_amount"]
    first = [td.text for td in all_css(page, "#preview-table tbody tr:first-child td")]
    assert first == ["2022-01-01 10:00:00", "1.5", "10.25"]
    assert by_css(page, "#md5").text and len(by_css(page, "#blake3").text) == 64


def _copy(driver: Any, target: str) -> str:
    """Press the copy button of ``target``, wait for it to say it copied, read the clipboard."""
    from selenium.webdriver.support.ui import WebDriverWait

    button = by_css(driver, f'button[data-copy-target="{target}"]')
    driver.execute_script("arguments[0].removeAttribute('data-copied')", button)
    button.click()
    WebDriverWait(driver, 10).until(lambda d: button.get_attribute("data-copied") is not None)
    return _clipboard(driver)


def _clipboard(driver: Any) -> str:
    return str(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, e => done('ERROR ' + e));"
    ))


def test_copy_buttons_put_the_snippet_on_the_clipboard(page: Any, site: Seeded) -> None:
    page.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": site.hub.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    page.get(site.hub.url + "/datasets/alice/taxi")
    expected = {
        "ds-1": "dshub download alice/taxi@v1",
        "ds-2": 'import dshub\ntree = dshub.open_dataset("alice/taxi@v1")',
    }
    for target, text in expected.items():
        assert _copy(page, target) == text
    rclone = _copy(page, "ds-3")
    assert rclone.startswith('eval "$(dshub creds alice/taxi@v1 --format env)"\nrclone copy dshub:dshub/datasets/')
    assert "SECRET" not in rclone.upper()
    page.get(site.hub.url + "/datasets/alice/taxi/file/v1/2022/01/trips.csv")
    assert _copy(page, "file-1") == 'import pandas as pd\ndf = pd.read_csv("dshub://alice/taxi@v1/2022/01/trips.csv")'
    assert by_css(page, 'button[data-copy-target="file-1"]').text == "Copied"


def test_forged_form_is_refused_and_a_real_one_saves(page: Any, site: Seeded) -> None:
    sign_in(page, site, site.alice)
    page.get(site.hub.url + "/datasets/alice/secret")
    by_css(page, "#edit summary").click()
    page.execute_script("document.querySelector('#edit-form [name=csrf_token]').value = 'forged';")
    by_css(page, "#e-description").send_keys("forged change")
    with navigating(page):
        by_css(page, "#edit-save").click()
    assert h1(page) == "Not allowed"
    assert "CSRF token is missing or stale" in by_css(page, "main").text
    page.get(site.hub.url + "/datasets/alice/secret")
    assert "forged change" not in by_css(page, "main").text
    by_css(page, "#edit summary").click()
    by_css(page, "#e-description").clear()
    by_css(page, "#e-description").send_keys("Payroll, 2024")
    by_css(page, "#e-tags").send_keys("hr, payroll")
    with navigating(page):
        by_css(page, "#edit-save").click()
    assert by_css(page, "#description").text == "Payroll, 2024"
    assert [t.text for t in all_css(page, "#tags .tag")] == ["hr", "payroll"]


def test_html_in_a_description_and_a_file_name_is_inert(page: Any, site: Seeded) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    page.get(site.hub.url + "/datasets/alice/taxi")
    assert by_css(page, "#description").text == XSS_DESCRIPTION
    assert page.execute_script("return window.__xss === undefined")
    with pytest.raises(NoAlertPresentException):
        _ = page.switch_to.alert.text
    link = next(a for a in all_css(page, "#files a.file") if a.text == XSS_FILE)
    assert not all_css(page, "img")
    with navigating(page):
        link.click()
    assert by_css(page, "#file-name").text == XSS_FILE
    assert [td.text for td in all_css(page, "#preview-table td")] == ["<b>bold</b>", "<script>alert(2)</script>"]
    assert not all_css(page, "img") and not all_css(page, "#preview-table b")
    with pytest.raises(NoAlertPresentException):
        _ = page.switch_to.alert.text


def test_a_20000_file_version_renders_its_first_level_at_once(page: Any, site: Seeded) -> None:
    page.get(site.hub.url + "/datasets/alice/big")
    server_ms = page.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.responseEnd - n.requestStart;")
    names = [a.text for a in all_css(page, "#files tbody a")]
    assert names == [f"d{d}/" for d in range(BIG_DIRS)] + [f"r{i:02d}.txt" for i in range(BIG_ROOT)]
    assert "20,000" in by_css(page, ".meta").text
    assert server_ms < 2000, f"first level of a 20,000-file version took {server_ms:.0f} ms"
    click_link(page, "d3/")
    assert len(all_css(page, "#files tbody a.file")) == 200
    with navigating(page):
        by_css(page, "#next-files").click()
    files = [a.text for a in all_css(page, "#files tbody a.file")]
    assert files[0] == "f00200.txt" and len(files) == 200
    assert BIG_PER_DIR > 400
