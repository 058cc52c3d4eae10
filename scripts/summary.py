"""Snakemake entry point: the summary and remote tables, the study's figures, the cost model
and its recommendation."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

import json
import logging
from contextlib import ExitStack
from pathlib import Path

from chunkatlas import report
from chunkatlas.analysis import close_run
from chunkatlas.errors import ChunkatlasError
from chunkatlas.study import PATTERNS

log = logging.getLogger("chunkatlas")


def main(snakemake):
    close_run()  # every analysis of the run is an input here: the run's cluster is done
    with ExitStack() as copies:
        results = {
            path: copies.enter_context(store.local_copy())
            for path, store in snakemake.params.results.value.items()
        }
        points = [
            report.GridPoint(**{**p, "result": results.get(p["result"])})
            for p in snakemake.params.points
        ]
        summarize(snakemake, points)


def summarize(snakemake, points):
    output = snakemake.output
    summary = report.build_summary(points)
    summary.to_csv(output.table, sep="\t", index=False)
    remote = report.remote_table(points)
    remote.to_csv(output.remote, sep="\t", index=False)
    passes = report.passes_table(points)
    passes.to_csv(output.passes, sep="\t", index=False)
    report.plot_passes(report.reference_geometry(passes), output.passes_plot)
    report.plot_steps(report.reference_geometry(summary), output.steps)
    report.plot_store_size(report.reference_geometry(summary), output.store_size)
    report.plot_moved(summary, output.moved)
    report.plot_remote(report.reference_geometry(remote), output.remote_plot)
    Path(output.geometry).mkdir(parents=True, exist_ok=True)
    for backend in snakemake.params.backends:
        for pattern in PATTERNS:
            where = f"{output.geometry}/{backend}-{pattern}.png"
            rows = remote[remote["backend"] == backend] if not remote.empty else remote
            if rows.empty:
                report.plot_message("remote accounting disabled (remote.enabled: false)", where)
            else:
                report.plot_geometry(rows, where, backend, pattern)
    description = snakemake.params.description.value
    try:
        fit = report.fit_costs(remote)
    except ChunkatlasError as err:  # e.g. one store, or remote accounting off
        log.info("no cost model: %s", err)
        report.plot_message(f"no cost model: {err}", output.cost_fit)
        Path(output.recommendation).write_text(f"note\nno cost model: {err}\n")
        Path(output.cost_model).write_text(json.dumps({"note": f"no cost model: {err}"}) + "\n")
        Path(output.first_page).write_text(report.first_page(None, str(err), description))
        return
    log.info("cost model: %s", fit.describe())
    report.plot_cost_fit(remote, fit, output.cost_fit)
    recommendations = report.recommend(remote, fit)
    recommendations.to_csv(output.recommendation, sep="\t", index=False)
    Path(output.first_page).write_text(report.first_page(recommendations, "", description))
    origin = f"the study run {snakemake.params.run} ({len(remote)} measured reads)"
    model = report.build_cost_model(remote, summary, fit, origin)
    Path(output.cost_model).write_text(model.to_json() + "\n")
    log.info("recommendation:\n%s", report.recommendation_text(recommendations))


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
