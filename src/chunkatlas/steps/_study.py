"""The store-geometry study: what each access pattern of each store costs over the emulated
network (:func:`remote`), and the run's summary: its tables, figures, cost model and
recommendation (:func:`summary`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:
    import pandas as pd

    from chunkatlas.report import GridPoint
    from chunkatlas.settings import RemoteStudy
    from chunkatlas.store import Bucket, RemoteSettings

log = logging.getLogger(__name__)


def remote(
    stores: Sequence[str | os.PathLike],
    manifests: Sequence[str | os.PathLike],
    tables: Sequence[str | os.PathLike],
    *,
    study: RemoteStudy,
    settings: RemoteSettings,
    in_bucket: Sequence[tuple[str, Bucket] | None] | None = None,
    processes: int = 1,
) -> list[pd.DataFrame]:
    """Serve ``stores`` (local, each ``manifests``' store, checked against it first) through
    each of ``study``'s backends, one server each for all of them, behind ``study``'s emulated
    network, and count every access pattern's requests, bytes and seconds (``study.repeats``
    cold reads); each store's table goes to its path in ``tables``.  ``in_bucket``: per store,
    its URL in the run's bucket, measured there for backend s3.  ``processes``: backends
    measured side by side."""
    from chunkatlas.store import verify_store
    from chunkatlas.study import measure_stores_backends

    if not len(stores) == len(manifests) == len(tables):
        raise ChunkatlasError(
            f"{len(stores)} stores, {len(manifests)} manifests and {len(tables)} tables: "
            "give one manifest and one table per store"
        )
    for store, manifest in zip(stores, manifests, strict=True):
        verify_store(store, manifest)
    measured = measure_stores_backends(
        stores,
        backends=study.backends,
        server=study.server,
        network=study.network,
        settings=settings,
        repeats=study.repeats,
        in_bucket=in_bucket,
        processes=processes,
    )
    for table, path in zip(measured, tables, strict=True):
        table.to_csv(path, sep="\t", index=False)
    return measured


@dataclass(frozen=True)
class SummaryPaths:
    """Where the summary writes each of its outputs (the summary rule's output names)."""

    table: str | os.PathLike  # summary.tsv
    remote: str | os.PathLike  # remote.tsv
    passes: str | os.PathLike  # analysis_passes.tsv
    passes_plot: str | os.PathLike
    steps: str | os.PathLike
    store_size: str | os.PathLike
    moved: str | os.PathLike
    remote_plot: str | os.PathLike
    geometry: str | os.PathLike  # a folder: a figure per backend and access pattern
    cost_fit: str | os.PathLike
    recommendation: str | os.PathLike
    cost_model: str | os.PathLike
    first_page: str | os.PathLike


def summary(
    points: Sequence[GridPoint],
    paths: SummaryPaths,
    *,
    backends: Sequence[str],
    run: str,
    description: str,
    per_tissue: Sequence[str] = (),
) -> None:
    """The run's tables, figures, cost model and recommendation from every grid point (each
    point's files and result local); ``description`` is what the run does, the report's first
    page's second half; ``per_tissue``: the steps of one job per tissue (a bar per tissue in
    the steps figure).  Without a cost model (one store, remote accounting off) each of its
    outputs says why."""
    from chunkatlas import model, report
    from chunkatlas.study import PATTERNS

    table = report.build_summary(points)
    table.to_csv(paths.table, sep="\t", index=False)
    remote_reads = report.remote_table(points)
    remote_reads.to_csv(paths.remote, sep="\t", index=False)
    passes = report.passes_table(points)
    passes.to_csv(paths.passes, sep="\t", index=False)
    report.plot_passes(report.reference_geometry(passes), paths.passes_plot)
    report.plot_steps(report.reference_geometry(table), paths.steps, per_tissue)
    report.plot_store_size(report.reference_geometry(table), paths.store_size)
    report.plot_moved(table, paths.moved)
    report.plot_remote(report.reference_geometry(remote_reads), paths.remote_plot)
    Path(paths.geometry).mkdir(parents=True, exist_ok=True)
    for backend in backends:
        for pattern in PATTERNS:
            where = f"{paths.geometry}/{backend}-{pattern}.png"
            rows = remote_reads
            if not remote_reads.empty:
                rows = remote_reads[remote_reads["backend"] == backend]
            if rows.empty:
                report.plot_message("remote accounting disabled (remote.enabled: false)", where)
            else:
                report.plot_geometry(rows, where, backend, pattern)
    try:
        fit = model.fit_costs(remote_reads)
    except ChunkatlasError as err:  # e.g. one store, or remote accounting off
        log.info("no cost model: %s", err)
        report.plot_message(f"no cost model: {err}", paths.cost_fit)
        Path(paths.recommendation).write_text(f"note\nno cost model: {err}\n")
        Path(paths.cost_model).write_text(json.dumps({"note": f"no cost model: {err}"}) + "\n")
        Path(paths.first_page).write_text(report.first_page(None, str(err), description))
        return
    log.info("cost model: %s", fit.describe())
    report.plot_cost_fit(remote_reads, fit, paths.cost_fit)
    recommendations = model.recommend(remote_reads, fit)
    recommendations.to_csv(paths.recommendation, sep="\t", index=False)
    Path(paths.first_page).write_text(report.first_page(recommendations, "", description))
    origin = f"the study run {run} ({len(remote_reads)} measured reads)"
    cost_model = model.build_cost_model(remote_reads, table, fit, origin)
    Path(paths.cost_model).write_text(cost_model.to_json() + "\n")
    log.info("recommendation:\n%s", model.recommendation_text(recommendations))
