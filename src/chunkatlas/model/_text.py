"""Figures as a person reads them: sizes, durations, counts and money."""

from __future__ import annotations

import math


def _figure(value: float) -> str:
    """2-3 significant digits as a person reads them: one decimal below 10, whole numbers
    (with thousands separators) from 10."""
    if value < 10:
        text = f"{value:.1f}"
        return text.removesuffix(".0")
    return f"{value:,.0f}"


def size_text(n_bytes: float) -> str:
    """Bytes in B, kB, MB, GB or TB (powers of 1000): ``1_560_000`` → ``"1.6 MB"``,
    ``2.91e10`` → ``"29 GB"``, ``3e15`` → ``"3,000 TB"``."""
    value = float(n_bytes)
    if round(value) < 1_000:
        return f"{value:,.0f} B"
    for unit in ("kB", "MB", "GB"):
        value /= 1_000
        if round(value) < 1_000:
            return f"{_figure(value)} {unit}"
    return f"{_figure(value / 1_000)} TB"


def duration_text(seconds: float) -> str:
    """Seconds in s, min or h: ``0.0523`` → ``"0.052 s"``, ``42.4`` → ``"42 s"``, ``2430`` →
    ``"40 min"``, ``5400`` → ``"1.5 h"``, ``3.6e6`` → ``"1,000 h"``."""
    value = float(seconds)
    if value < 1:
        return "0 s" if value <= 0 else f"{value:.2g} s"
    if round(value) < 60:
        return f"{_figure(value)} s"
    if round(value / 60) < 60:
        return f"{_figure(value / 60)} min"
    return f"{_figure(value / 3_600)} h"


def count_text(n: float) -> str:
    """A count with thousands separators: ``1251`` → ``"1,251"``."""
    return f"{round(n):,}"


def money_text(dollars: float) -> str:
    """US dollars readable at every magnitude: two significant digits below 10 cents
    (``0.0004`` → ``"$0.0004"``, ``0.0123`` → ``"$0.012"``), cents below $100 (``0.523`` →
    ``"$0.52"``, ``12.3`` → ``"$12.30"``), whole dollars with thousands separators from $100
    (``1234.4`` → ``"$1,234"``)."""
    value = float(dollars)
    if value <= 0:
        return "$0"
    if round(value, 2) >= 100:
        return f"${value:,.0f}"
    if value >= 0.095:
        return f"${value:,.2f}"
    decimals = 1 - math.floor(math.log10(value))  # two significant digits
    text = f"{round(value, decimals):.{decimals}f}".rstrip("0")
    return f"${text}"
