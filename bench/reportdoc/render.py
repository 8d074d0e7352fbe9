"""HTML and Markdown from one :class:`~.model.Report`, through Jinja2 templates (package data)."""

from __future__ import annotations

import base64
import functools
from pathlib import Path

from .model import Report


@functools.lru_cache(maxsize=1)
def _env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("icb_bench.bench.reportdoc", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(report: Report) -> str:
    """One self-contained page: CSS inline, every image a data: URI, no script, no network."""
    from importlib import resources

    css = resources.files(__package__).joinpath("templates/report.css").read_text(encoding="utf-8")
    return _env().get_template("report.html.j2").render(r=report, css=css, data_uri=data_uri)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_markdown(report: Report, out: Path) -> list[Path]:
    """``out`` and its images as PNG files in ``<stem>_files/`` beside it (relative links)."""
    img_dir = out.parent / f"{out.stem}_files"
    written = []
    links: dict[str, str] = {}
    for s in report.sections:
        for f in s.figures:
            img_dir.mkdir(parents=True, exist_ok=True)
            p = img_dir / f"{f.key}.png"
            p.write_bytes(f.png)
            written.append(p)
            links[f.key] = f"{img_dir.name}/{p.name}"
    env = _env().overlay(autoescape=False)
    text = env.get_template("report.md.j2").render(r=report, link=links, cell=_md_cell)
    out.write_text(text, encoding="utf-8")
    return [out, *written]
