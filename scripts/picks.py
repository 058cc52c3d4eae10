"""Snakemake entry point: what ``chunkatlas advise`` picks for a fetched tissue, per remote
backend and pattern (:func:`chunkatlas.steps.pick_layouts`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.workflow import input_store, run_job


def main(snakemake):
    with input_store(snakemake, "fetched").local_copy() as fetched:
        steps.pick_layouts(
            fetched,
            snakemake.output.picks,
            backends=snakemake.params.backends,
            model=snakemake.params.model,
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
