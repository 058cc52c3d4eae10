"""Snakemake entry point: request accounting of one store on loopback servers (HTTP, S3), or
over S3 in the run's own bucket when the workflow keeps its outputs in one."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.store import verify_store
from chunkatlas.study import Network, measure_backends


def main(snakemake):
    params = snakemake.params
    reads = params.reads.value
    # served over HTTP from this job's disk, its manifest beside it
    with reads.local_copy(beside=(snakemake.input.manifest,)) as store:
        verify_store(store, snakemake.input.manifest)
        table = measure_backends(
            store,
            backends=params.backends,
            server=params.server,
            network=Network(latency_ms=params.latency_ms, bandwidth_mbps=params.bandwidth_mbps),
            settings=params.settings.value,
            repeats=params.repeats,
            in_bucket=reads.in_bucket,
        )
    table.to_csv(snakemake.output.table, sep="\t", index=False)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
