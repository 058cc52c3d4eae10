"""Snakemake entry point: request accounting of a tissue's stores on loopback servers (HTTP,
S3; each server started once for all of them), or over S3 in the run's own bucket when the
workflow keeps its outputs in one (:func:`chunkatlas.steps.remote`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.workflow import input_store, local_copies, run_job


def main(snakemake):
    params = snakemake.params
    stores = input_store(snakemake, "stores")
    manifests = snakemake.input.manifests
    # served over HTTP from this job's disk, each manifest beside its store
    with local_copies(stores, manifests) as local:
        steps.remote(
            local,
            manifests,
            snakemake.output.tables,
            study=params.study.value,
            settings=params.settings.value,
            in_bucket=[store.in_bucket for store in stores],
            processes=snakemake.threads,  # the backends side by side, a core each
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
