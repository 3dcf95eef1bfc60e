"""Numbers as the text of a table cell (reports, benchmarks, consoles); '—' where there is no value."""
from __future__ import annotations

import math
from typing import Any

DASH = "—"


def missing(x: Any) -> bool:
    """True for None and for a float that is NaN or infinite."""
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def fmt(x: Any, digits: int = 1, unit: str = "", none: str = DASH) -> str:
    """A number with `digits` decimals and `unit`; `none` for None/NaN."""
    return none if missing(x) else f"{x:.{digits}f}{unit}"


def plus_minus(m: Any, s: Any, digits: int = 1, unit: str = "", scale: float = 1.0) -> str:
    """'mean ± SD[unit]' (both times `scale`); the mean alone when the SD is missing."""
    if missing(m):
        return DASH
    sd = "" if missing(s) else f" ± {s * scale:.{digits}f}"
    return f"{m * scale:.{digits}f}{sd}{unit}"


def p_value(p: Any) -> str:
    """A p-value: '< 0.001' below it, else three decimals."""
    if missing(p):
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
