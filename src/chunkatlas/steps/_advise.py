"""Which layout to write an atlas in, for how it is read (``chunkatlas advise``): the atlas's
size from its metadata (or as given), a cost model, and the model's answer (:func:`advise`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chunkatlas.errors import ChunkatlasError

#: The size of an atlas given by its cells alone: genes, and stored values per cell (about
#: the Census's).
DEFAULT_GENES = 20_000
DEFAULT_VALUES_PER_CELL = 1_500


def advise(
    source: str | None,
    *,
    backend: str,
    tissue: str | None = None,
    cells: int | None = None,
    genes: int | None = None,
    values_per_cell: int | None = None,
    patterns: Sequence[str] | None = None,
    model: str | None = None,
    directory: Path,
    run: str | None = None,
    prices: str | None = None,
    max_objects: int | None = None,
    reader: str | None = None,
) -> str:
    """The answer of ``chunkatlas advise``: which cost model (``model``, else a study run's in
    ``directory``, the default config's ``run`` first, else the reference model), then per
    access pattern (``patterns``, None: all) the layout to write with its predicted costs and
    the command that writes it, then the best single layout and pair for the mix.

    The atlas is ``source`` (a store, an h5ad or a SOMA Experiment's ``tissue``), its cells
    scaled to ``cells`` if given; without a source, ``cells`` with ``genes`` and
    ``values_per_cell`` (:data:`DEFAULT_GENES`, :data:`DEFAULT_VALUES_PER_CELL`).

    Money is priced by the price file ``prices`` (YAML or JSON; None: AWS S3 Standard's list
    prices, :class:`~chunkatlas.model.Prices`); layouts whose whole store has more than
    ``max_objects`` objects are not advised.  ``reader``: who reads it (anndata, as a user
    does, or chunkatlas's analysis; None: the reader the model was fitted on)."""
    from chunkatlas.model import (
        DEMO_COLUMNS,
        X_PATTERNS,
        Atlas,
        Prices,
        advice_text,
        atlas_of,
        choose_cost_model,
        columns_of,
        load_prices,
    )

    if source is None and cells is None:
        raise ChunkatlasError(
            "advise needs a SOURCE (a store, an h5ad, a SOMA Experiment) or --cells N"
        )
    if source is not None:
        for name, value in (("genes", genes), ("values_per_cell", values_per_cell)):
            if value is not None:
                raise ChunkatlasError(
                    f"--{name.replace('_', '-')} {value}: the size of an atlas without a "
                    f"SOURCE; {source} gives its own (--cells to scale it)"
                )
    if max_objects is not None and (
        isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1
    ):
        raise ChunkatlasError(f"--max-objects {max_objects!r}: it must be a positive integer")
    price_table = load_prices(prices) if prices is not None else Prices()
    cost_model, which = choose_cost_model(model, backend, directory, run)
    first = None
    if source is None:
        genes = genes or DEFAULT_GENES
        per_cell = values_per_cell or DEFAULT_VALUES_PER_CELL
        if per_cell > genes:
            raise ChunkatlasError(
                f"--values-per-cell {per_cell:,} is more than the atlas's genes ({genes:,}): "
                "a cell stores at most one value per gene"
            )
        atlas = Atlas(cells, genes, cells * per_cell)
        written_from = "ATLAS.zarr"
    else:
        atlas = atlas_of(source, tissue)
        atlas = atlas.with_cells(cells) if cells else atlas
        written_from = source
        if not source.rstrip("/").endswith(".zarr"):  # rechunk reads AnnData zarr stores
            name = tissue or Path(source.rstrip("/")).stem
            written_from = f"{name.replace(' ', '_')}.zarr"
            first = f"(first: chunkatlas fetch {source} {tissue or 'all'} {written_from})"
    # Bytes per value: an AnnData source's own, measured on a sample of its cells (also when
    # --cells scales it), else the cost model's.
    from dataclasses import replace

    from chunkatlas.model import source_encodings

    own, measured = source_encodings(source, cost_model.encodings)
    cost_model = replace(cost_model, encodings=own) if own else cost_model
    which = f"{which}\n{measured}"
    chosen = list(patterns) if patterns else list(X_PATTERNS)
    columns = columns_of(source) if source is not None else DEMO_COLUMNS
    columns_from = "the demo atlas's" if columns is DEMO_COLUMNS else f"{source}'s"
    advice = advice_text(
        atlas,
        cost_model,
        backend,
        chosen,
        written_from,
        prices=price_table,
        max_objects=max_objects,
        columns=columns,
        columns_from=columns_from,
        reader=reader,
    )
    return "\n".join(line for line in (which, first, advice) if line)
