"""Snakemake entry point: the reads of a tissue's picked stores outside the grid, measured as
the remote step measures the grid's (:func:`chunkatlas.steps.measure_picks`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.workflow import input_store, local_copies, run_job


def main(snakemake):
    params = snakemake.params
    stores = input_store(snakemake, "stores")
    manifests = list(snakemake.input.manifests)
    with local_copies(stores, manifests) as local:
        steps.measure_picks(
            local,
            manifests,
            params.names,
            snakemake.output.table,
            study=params.study.value,
            settings=params.settings.value,
            processes=snakemake.threads,
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
