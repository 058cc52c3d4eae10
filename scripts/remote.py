"""Snakemake entry point: request accounting of a tissue's stores on loopback servers (HTTP,
S3; each server started once for all of them), or over S3 in the run's own bucket when the
workflow keeps its outputs in one."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from contextlib import ExitStack

from chunkatlas.store import verify_store
from chunkatlas.study import Network, measure_stores_backends


def main(snakemake):
    params = snakemake.params
    stores = params.reads.value
    manifests = snakemake.input.manifests
    with ExitStack() as copies:
        # served over HTTP from this job's disk, each manifest beside its store
        local = [
            copies.enter_context(store.local_copy(beside=(manifest,)))
            for store, manifest in zip(stores, manifests, strict=True)
        ]
        for store, manifest in zip(local, manifests, strict=True):
            verify_store(store, manifest)
        tables = measure_stores_backends(
            local,
            backends=params.backends,
            server=params.server,
            network=Network(latency_ms=params.latency_ms, bandwidth_mbps=params.bandwidth_mbps),
            settings=params.settings.value,
            repeats=params.repeats,
            in_bucket=[store.in_bucket for store in stores],
            processes=snakemake.threads,  # the backends side by side, a core each
        )
    for table, path in zip(tables, snakemake.output.tables, strict=True):
        table.to_csv(path, sep="\t", index=False)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
