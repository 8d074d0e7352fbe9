"""The report's charts (matplotlib, Agg, no pyplot state): PNG bytes, with a glyph check.

Each chart is drawn on a fresh :class:`matplotlib.figure.Figure` so that reports built in one
process never share state. After drawing, :func:`missing_glyphs` checks every text on the figure
against the fonts in use: a label that would render as boxes is reported, never silently shipped.
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from typing import Any, Iterator

from .fonts import CjkFont, covers
from .labels import Words

DPI = 110
#: colours (colour-blind safe pair first) and the window shade
C_DECLARED, C_MEASURED, C_BAD, C_WINDOW = "#4477AA", "#EE7733", "#CC3311", "#DDDDDD"


class GlyphError(RuntimeError):
    """A chart label has characters no font in use can draw."""


@contextmanager
def _style(cjk: CjkFont | None) -> Iterator[None]:
    import matplotlib

    families = ([cjk.family] if cjk else []) + ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": families, "axes.unicode_minus": False, "font.size": 9}):
        yield


def _font_files(families: list[str]) -> list[str]:
    from matplotlib import font_manager

    out = []
    for fam in families:
        try:
            out.append(font_manager.findfont(font_manager.FontProperties(family=fam), fallback_to_default=False))
        except ValueError:
            continue
    return out


def missing_glyphs(fig: Any) -> set[str]:
    """Characters of the figure's texts that none of its fonts can draw (would show as boxes)."""
    from matplotlib.text import Text

    chars = {ch for t in fig.findobj(Text) for ch in t.get_text() if not ch.isascii() and not ch.isspace()}
    if not chars:
        return set()
    import matplotlib

    files = _font_files(list(matplotlib.rcParams["font.family"]))
    return {ch for ch in chars if not any(covers(f, ch) for f in files)}


def _png(fig: Any) -> bytes:
    missing = missing_glyphs(fig)
    if missing:
        raise GlyphError("no font can draw " + "".join(sorted(missing)))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


class Plotter:
    """Draws the charts with labels in ``words``' language (English where no CJK font exists)."""

    def __init__(self, words: Words, cjk: CjkFont | None):
        self.w = words
        self.cjk = cjk

    def claims(self, claims: list[dict[str, Any]]) -> bytes | None:
        """Declared against verified figure per claim, the interval as an error bar, the requirement dashed."""
        shown = [c for c in claims if c.get("declared") is not None or c.get("figure") is not None]
        if not shown:
            return None
        with _style(self.cjk):
            fig = _figure(2.6 * len(shown) + 0.6, 3.0)
            axes = fig.subplots(1, len(shown), squeeze=False)[0]
            for ax, c in zip(axes, shown):
                share = c.get("unit") == "share"
                k = 100.0 if share else 1.0
                dec, fig_v = _f(c.get("declared")), _f(c.get("figure"))
                vals = [v * k if v is not None else 0.0 for v in (dec, fig_v)]
                colors = [C_DECLARED, C_MEASURED if c.get("status") == "CONFIRMED" else C_BAD]
                ax.bar([0, 1], vals, color=colors, width=0.6)
                lo, hi = _f(c.get("low")), _f(c.get("high"))
                if fig_v is not None and lo is not None and hi is not None:
                    ax.errorbar([1], [fig_v * k], yerr=[[max(fig_v - lo, 0) * k], [max(hi - fig_v, 0) * k]],
                                color="black", capsize=6, lw=1.2)
                req = _f(c.get("required"))
                if req is not None:
                    ax.axhline(req * k, ls="--", color="grey", lw=1, label=self.w("requirement_line"))
                    ax.legend(loc="best", fontsize=7)
                ax.set_xticks([0, 1], [self.w("declared"), self.w("measured_src") if c.get("source") == "measured"
                                       else self.w.source(c.get("source"))])
                unit = "%" if share else (c.get("unit") or "")
                prec = f" ({c['precision'].upper()})" if c.get("precision") and not share else ""
                ax.set_title(f"{c['id']} {c['zh'] if self.w.lang == 'zh' else c['en']}", fontsize=9)
                ax.set_ylabel(f"{unit}{prec}")
                for i, v in enumerate((dec, fig_v)):
                    if v is None:
                        ax.text(i, 0, self.w("not_measured"), ha="center", va="bottom", fontsize=8)
            return _png(fig)

    def attainment(self, groups: dict[str, list[float]]) -> bytes | None:
        """算力达成率 of every device, one row per model and precision (dots, median marked)."""
        groups = {k: v for k, v in groups.items() if v}
        if not groups:
            return None
        with _style(self.cjk):
            fig = _figure(7.5, 0.55 * len(groups) + 1.2)
            ax = fig.subplots()
            for i, (label, values) in enumerate(groups.items()):
                ys = [i + 0.08 * ((j % 5) - 2) for j in range(len(values))]
                ax.scatter([v * 100 for v in values], ys, s=14, color=C_MEASURED, alpha=0.8)
                med = sorted(values)[len(values) // 2]
                ax.plot([med * 100] * 2, [i - 0.3, i + 0.3], color="black", lw=1.5)
            ax.set_yticks(range(len(groups)), list(groups))
            ax.set_xlabel(self.w("peak_fraction_chart") + " (%)")
            ax.set_xlim(0, max(100.0, max(v * 100 for vs in groups.values() for v in vs) * 1.05))
            ax.grid(axis="x", alpha=0.3)
            return _png(fig)

    def racks(self, racks: list[dict[str, Any]], required: float | None) -> bytes | None:
        """Per-rack GFLOPS/W with its stated interval; racks without a figure are listed, not drawn as 0."""
        drawn = [r for r in racks if r.get("gflops_per_w") is not None]
        if not drawn:
            return None
        with _style(self.cjk):
            fig = _figure(max(4.0, 0.45 * len(drawn) + 2), 3.0)
            ax = fig.subplots()
            xs = range(len(drawn))
            vals = [float(r["gflops_per_w"]) for r in drawn]
            lo = [v - float(r.get("gflops_per_w_low") or v) for v, r in zip(vals, drawn)]
            hi = [float(r.get("gflops_per_w_high") or v) - v for v, r in zip(vals, drawn)]
            colors = [C_MEASURED if r.get("valid", True) else C_BAD for r in drawn]
            ax.bar(xs, vals, color=colors, width=0.6)
            ax.errorbar(xs, vals, yerr=[lo, hi], fmt="none", color="black", capsize=4, lw=1)
            if required is not None:
                ax.axhline(required, ls="--", color="grey", lw=1, label=self.w("requirement_line"))
                ax.legend(loc="best", fontsize=7)
            ax.set_xticks(list(xs), [str(r.get("rack_id") or r.get("label") or "?") for r in drawn],
                          rotation=45 if len(drawn) > 8 else 0)
            ax.set_ylabel(f"{self.w('measured_eff')} (GFLOPS/W, FP16)")
            return _png(fig)

    def trace(self, df: Any, window_s: float | None, title: str) -> bytes | None:
        """Power, SM clock and temperature over the core phase, the window shaded."""
        series = [(c, lbl) for c, lbl in (("power_w", "power_w"), ("sm_clock_mhz", "clock_mhz"), ("temperature_c", "temp_c"))
                  if c in df.columns and df[c].notna().any()]
        if "t_s" not in df.columns or df.empty:
            return None
        with _style(self.cjk):
            n = max(len(series), 1)
            fig = _figure(7.5, 1.35 * n + 0.9)
            axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
            t = df["t_s"].astype(float)
            for ax, (col, lbl) in zip(axes, series):
                ax.plot(t, df[col].astype(float), lw=0.8, color=C_DECLARED if col == "power_w" else C_MEASURED)
                ax.set_ylabel(self.w(lbl), fontsize=8)
                ax.grid(alpha=0.3)
            if not series:
                axes[0].text(0.5, 0.5, self.w("not_measured"), transform=axes[0].transAxes, ha="center")
                axes[0].set_yticks([])
            for ax in axes:
                if window_s is not None and math.isfinite(window_s):
                    ax.axvspan(0.0, window_s, color=C_WINDOW, alpha=0.6, lw=0, zorder=0)
            axes[0].set_title(title, fontsize=9)
            axes[-1].set_xlabel(self.w("time_s"))
            return _png(fig)


def _f(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
