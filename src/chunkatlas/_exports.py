"""Public names of a package, imported from its private modules on first use.

A package's ``__init__`` imports its public names under ``if TYPE_CHECKING:`` (so readers,
editors and type checkers see where each comes from) and takes ``__all__``, ``__getattr__``
and ``__dir__`` from :func:`lazy_exports`, which reads those imports from the file: importing one
room of chunkatlas does not import the libraries of every module in it (Dask workers and the
analysis driver start without anndata, pandas or tiledbsoma).
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path


def declared_exports(init_file: str) -> dict[str, str]:
    """Public name -> defining module, from the ``if TYPE_CHECKING:`` imports of ``init_file``."""
    tree = ast.parse(Path(init_file).read_text())
    exports = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    exports.update({alias.name: statement.module for alias in statement.names})
    return exports


def lazy_exports(
    package: str, init_file: str
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose ``__init__`` file
    ``init_file`` declares its public names under ``if TYPE_CHECKING:``."""
    exports = declared_exports(init_file)
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return sorted(exports), __getattr__, __dir__
