"""CJK fonts for the report's plots: find one that really has the glyphs, or say there is none.

matplotlib draws a missing glyph as an empty box (豆腐 "tofu") and only warns; a report whose
axis labels are boxes is worse than one in English. So a font counts only when its file maps
every character of :data:`PROBE` to a glyph, and the plots fall back to English labels otherwise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

#: font families tried in order (Debian's fonts-noto-cjk first; common desktop fonts after)
CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Noto Serif CJK SC",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
)
#: characters every report label uses; a font must have all of them
PROBE = "实测标称算力达成率理论算效功率时钟温度申报核验机架节点精度窗口"
#: what to install when no family is found (named in the warning)
INSTALL_HINT = "apt-get install -y fonts-noto-cjk"


@dataclass(frozen=True)
class CjkFont:
    family: str
    path: str


def covers(path: str, text: str = PROBE) -> bool:
    """True when the font file maps every character of ``text`` to a real glyph (not .notdef)."""
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(path)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(ch)) != 0 for ch in text if not ch.isspace())


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> CjkFont | None:
    """The first family of :data:`CJK_FAMILIES` installed here whose file covers :data:`PROBE`."""
    from matplotlib import font_manager

    for family in CJK_FAMILIES:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:  # not installed
            continue
        if covers(path):
            return CjkFont(family, path)
    return None
