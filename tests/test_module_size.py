"""No module of the package is over MAX_LINES lines: a module that grows past it is split by what
it does, as ``analysis/fused/_passes.py`` was split by pass."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chunkatlas"

#: Most lines a module of the package may have.
MAX_LINES = 450


def line_count(path: Path) -> int:
    """The lines of the file at ``path``, as ``wc -l`` counts them (a last line without a
    newline counts too)."""
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_the_line_limit():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no modules under {PACKAGE}"
    over = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in modules
        if (lines := line_count(path)) > MAX_LINES
    }
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{name} ({lines} lines)" for name, lines in over.items()
    )
