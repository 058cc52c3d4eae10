"""Snakemake entry point: the summary and remote tables, the study's figures, the cost model
and its recommendation (:func:`chunkatlas.steps.summary`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from contextlib import ExitStack

from chunkatlas import report, steps
from chunkatlas.workflow import PER_TISSUE_STEPS, close_run_clusters, job_bucket, run_job, store_in


def main(snakemake):
    close_run_clusters()  # every analysis of the run is an input here: the run's cluster is done
    output = snakemake.output
    with ExitStack() as copies:
        bucket = job_bucket(snakemake)
        points = [
            report.GridPoint(
                **{
                    **p,
                    # each result beside its completion record, a copy of it from a bucket
                    "result": p["result"]
                    and copies.enter_context(store_in(p["result_objects"], bucket).local_copy()),
                }
            )
            for p in snakemake.params.points
        ]
        steps.summary(
            points,
            steps.SummaryPaths(**{name: output[name] for name in output.keys()}),
            backends=snakemake.params.backends,
            run=snakemake.params.run,
            description=snakemake.params.description.value,
            per_tissue=PER_TISSUE_STEPS,
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
