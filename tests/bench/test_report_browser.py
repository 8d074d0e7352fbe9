"""The report in a real headless browser (Debian's chromium + chromium-driver, driven by selenium):
it renders, every image loads, no console errors, CJK text is drawn with real glyphs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from icb_bench.bench.reportdoc import ReportInput, build_report, write_report
from report_records import DECLARATION, H100_REF

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs chromium and chromium-driver (apt-get install -y chromium chromium-driver)")

#: draws each string on a canvas in the page's own font and returns the pixels' fingerprint:
#: two different CJK characters drawn as boxes (tofu) give the same bitmap, real glyphs do not
_GLYPHS_JS = """
const font = getComputedStyle(document.body).fontFamily;
function ink(s) {
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const x = c.getContext('2d'); x.font = '40px ' + font; x.fillStyle = '#000'; x.fillText(s, 4, 48);
  const d = x.getImageData(0, 0, 64, 64).data; let h = 0, n = 0;
  for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) { n++; h = (h * 31 + i) % 1000000007; } }
  return [n, h];
}
return {font: font, shi: ink('实'), ce: ink('测'), suan: ink('算'), missing: ink('\\u{10FFFD}')};
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic", "--window-size=1300,2000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    except Exception as exc:  # noqa: BLE001 - a browser that will not start here is a skip, with the reason
        pytest.skip(f"chromium did not start under chromedriver: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def report_url(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("browser") / "report.html"
    write_report(build_report(ReportInput(runs=[H100_REF], declared=DECLARATION)), out, "html")
    return out.as_uri()


def test_renders_with_images_no_errors_and_cjk_glyphs(browser, report_url, tmp_path):
    browser.get(report_url)
    assert browser.execute_script("return document.readyState") == "complete"
    assert "工业智算基地算力评估报告" in browser.title
    headline = browser.find_element("css selector", "#verdict .headline").text
    assert "未达标" in headline
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(images) == 4 and all(ok and w > 0 and h > 0 for ok, w, h, _ in images), images
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == []
    g = browser.execute_script(_GLYPHS_JS)
    assert "Noto Sans CJK SC" in g["font"]  # the report's own style sheet applies
    assert g["shi"][0] > 0 and g["ce"][0] > 0
    # real glyphs: different characters, different bitmaps, and none equals the missing-glyph box
    assert len({tuple(g["shi"]), tuple(g["ce"]), tuple(g["suan"])}) == 3, g
    assert tuple(g["missing"]) not in {tuple(g["shi"]), tuple(g["ce"]), tuple(g["suan"])}, g
    tables = browser.execute_script("return document.querySelectorAll('table').length")
    assert tables >= 8
    shot = tmp_path / "report.png"  # screenshots stay out of the repository
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
