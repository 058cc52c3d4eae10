"""Snakemake entry point: HVG and PCA on a Dask cluster, reading the store where
``analysis.read`` says: its path, or a loopback HTTP or S3 server behind the emulated network.

The guard matters: Dask's worker processes re-import the main module.
"""

from dataclasses import replace

from chunkatlas.analysis._analyze import AnalysisParams, analyze_store
from chunkatlas.analysis._client import ClusterSettings
from chunkatlas.logs import run_snakemake_step
from chunkatlas.report._provenance import run_record
from chunkatlas.rewrite._consolidate import verify_store
from chunkatlas.store._guarded import RemoteSettings
from chunkatlas.study._serving import Network, served_store


def main(snakemake):
    config = snakemake.config
    store = snakemake.input.store
    verify_store(store, snakemake.input.manifest)

    def analyze(where, remote=None):
        analyze_store(
            where,
            snakemake.output.result,
            rows=snakemake.params.rows,
            params=AnalysisParams.from_config(config),
            cluster=ClusterSettings.from_config(
                config, workers=snakemake.threads, memory_mb=snakemake.resources.mem_mb
            ),
            provenance={"config_hash": run_record(config)["config_hash"]},
            zarr_format=config["zarr_format"],
            remote=remote,
        )

    read = config["analysis"]["read"]
    if read == "local":
        return analyze(store)
    server = config["remote"]["server"] if read == "http" else "moto"
    with served_store(read, store, server, Network.from_config(config)) as (url, options):
        remote = RemoteSettings.from_config(config, "analysis")
        analyze(url, replace(remote, storage_options={**remote.storage_options, **options}))


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
