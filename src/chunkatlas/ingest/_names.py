"""One line for a name a source lacks (a tissue, column, layer, measurement): the same line
before any job (:mod:`._facts`) and in fetch (:mod:`._fetch`)."""

from __future__ import annotations

from collections.abc import Iterable

from chunkatlas.errors import ChunkatlasError

#: Names a message lists, at most.
NAMED_VALUES = 20


def refuse_missing(what: str, name: str, has: Iterable[object], where: str, key: str) -> None:
    """One line for ``name`` (config ``key``), a ``what`` that ``where`` does not have, naming
    those it has; the same line before any job and in fetch."""
    has = [str(h) for h in has]
    if name not in has:
        raise ChunkatlasError(f"{what} {name!r} not in {where} ({key}); has: {listed(has)}")


def refuse_missing_var_index(name: str, has: Iterable[object]) -> None:
    """One line for a var column for var_names (``source.var_index``) the source lacks."""
    has = [str(h) for h in has]
    if name not in has:
        raise ChunkatlasError(
            f"var has no column {name!r} for var_names (source.var_index); has: {listed(has)}"
        )


def listed(names: list[str]) -> str:
    """``names`` for a message: the first NAMED_VALUES, comma-separated ('none' for none)."""
    more = ", ..." if len(names) > NAMED_VALUES else ""
    return (", ".join(names[:NAMED_VALUES]) + more) or "none"


def refuse_layer_and_raw(layer: str | None, use_raw: bool) -> None:
    """An AnnData source's X comes from a layer or from raw, not both."""
    if layer is not None and use_raw:
        raise ChunkatlasError(
            f"config source.layer {layer!r} and source.use_raw both say where X is: give one "
            "(source.layer for a layer of counts, source.use_raw: true for .raw)"
        )
