"""Snakemake entry point: consolidate a store's metadata and write its manifest
(:func:`chunkatlas.steps.consolidate`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.workflow import input_store, run_job


def main(snakemake):
    store = input_store(snakemake)
    with store.local_copy() as copy:
        steps.consolidate(
            copy,
            snakemake.output.manifest,
            provenance={"config_hash": snakemake.params.config_hash.value},
            in_bucket=store.in_bucket,
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
