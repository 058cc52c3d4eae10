"""Snakemake entry point: HVG and PCA on a Dask cluster, reading the store where
``analysis.read`` says: its path, or a loopback HTTP or S3 server behind the emulated network.
When the run keeps its outputs in an object store, the store is read where it lies there.

The guard matters: Dask's worker processes re-import the main module.
"""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from dataclasses import fields, replace

from chunkatlas.analysis import AnalysisParams, analyze_store
from chunkatlas.store import verify_store
from chunkatlas.study import served_store


def main(snakemake):
    params = snakemake.params
    reads = params.reads.value
    store = reads.where

    def analyze(where, remote=None):
        analyze_store(
            where,
            params.writes.value.path,
            rows=params.rows,
            params=AnalysisParams(**{f.name: params[f.name] for f in fields(AnalysisParams)}),
            cluster=params.cluster.value,
            provenance={"config_hash": params.config_hash.value},
            zarr_format=params.zarr_format,
            remote=remote,
        )

    if reads.bucket is not None:  # its URL: the guarded reader checks it against its manifest
        return analyze(store, reads.bucket.reader(params.remote.value))
    verify_store(store, snakemake.input.manifest)
    if params.backend == "local":
        return analyze(store)
    server = params.server if params.backend == "http" else "moto"
    with served_store(params.backend, store, server, params.network.value) as (url, options):
        remote = params.remote.value
        analyze(url, replace(remote, storage_options={**remote.storage_options, **options}))


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
