"""PDF by a headless browser: Debian's ``chromium`` prints the self-contained HTML.

The flags keep the browser off the network (no component updates, sync, QUIC or first-run
calls): the report needs nothing outside itself.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

#: browser executables tried in order
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic", "--no-pdf-header-footer")
TIMEOUT_S = 180.0


class PdfError(Exception):
    """No browser, or the browser failed to print."""


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def print_pdf(html: str, out: Path, browser: str | None = None, timeout_s: float = TIMEOUT_S) -> None:
    exe = browser or find_browser()
    if exe is None:
        raise PdfError("no headless browser found (" + ", ".join(BROWSERS) + "); install one: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="icb-report-") as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(html, encoding="utf-8")
        cmd = [exe, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--print-to-pdf={Path(out).resolve()}", src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise PdfError(f"{exe} did not finish printing within {timeout_s:g} s") from None
        except OSError as exc:
            raise PdfError(f"{exe}: cannot start ({exc.strerror or exc})") from None
    if proc.returncode != 0 or not Path(out).is_file() or Path(out).stat().st_size == 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise PdfError(f"{exe} exited {proc.returncode} without a PDF ({tail[0]})")
