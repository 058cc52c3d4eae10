"""Snakemake entry point: the summary and remote tables, the study's figures, the cost model
and its recommendation."""

import logging
from pathlib import Path

from chunkatlas.analysis._shared_cluster import close_run
from chunkatlas.errors import ChunkatlasError
from chunkatlas.logs import run_snakemake_step
from chunkatlas.report._cost_model import fit_costs, recommend, recommendation_text
from chunkatlas.report._figures import (
    plot_cost_fit,
    plot_geometry,
    plot_message,
    plot_passes,
    plot_remote,
    plot_steps,
    plot_store_size,
)
from chunkatlas.report._tables import (
    GridPoint,
    build_summary,
    passes_table,
    reference_geometry,
    remote_table,
)
from chunkatlas.study._measure import PATTERNS

log = logging.getLogger("chunkatlas")


def main(snakemake):
    close_run()  # every analysis of the run is an input here: the run's cluster is done
    output = snakemake.output
    points = [GridPoint(**p) for p in snakemake.params.points]
    summary = build_summary(points)
    summary.to_csv(output.table, sep="\t", index=False)
    remote = remote_table(points)
    remote.to_csv(output.remote, sep="\t", index=False)
    passes = passes_table(points)
    passes.to_csv(output.passes, sep="\t", index=False)
    plot_passes(reference_geometry(passes), output.passes_plot)
    plot_steps(reference_geometry(summary), output.steps)
    plot_store_size(reference_geometry(summary), output.store_size)
    plot_remote(reference_geometry(remote), output.remote_plot)
    Path(output.geometry).mkdir(parents=True, exist_ok=True)
    for backend in snakemake.params.backends:
        for pattern in PATTERNS:
            where = f"{output.geometry}/{backend}-{pattern}.png"
            rows = remote[remote["backend"] == backend] if not remote.empty else remote
            if rows.empty:
                plot_message("remote accounting disabled (remote.enabled: false)", where)
            else:
                plot_geometry(rows, where, backend, pattern)
    try:
        fit = fit_costs(remote)
    except ChunkatlasError as err:  # e.g. one store, or remote accounting off
        log.info("no cost model: %s", err)
        plot_message(f"no cost model: {err}", output.cost_fit)
        Path(output.recommendation).write_text(f"note\nno cost model: {err}\n")
        return
    log.info("cost model: %s", fit.describe())
    plot_cost_fit(remote, fit, output.cost_fit)
    recommendations = recommend(remote, fit)
    recommendations.to_csv(output.recommendation, sep="\t", index=False)
    log.info("recommendation:\n%s", recommendation_text(recommendations))


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
