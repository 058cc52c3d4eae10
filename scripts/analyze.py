"""Snakemake entry point: HVG and PCA on a Dask cluster.

The guard matters: Dask's worker processes re-import the main module.
"""

from chunkatlas.analyze import AnalysisParams, analyze_store
from chunkatlas.cluster import ClusterSettings
from chunkatlas.consolidate import verify_store
from chunkatlas.logs import run_snakemake_step
from chunkatlas.provenance import run_record


def main(snakemake):
    config = snakemake.config
    verify_store(snakemake.input.store, snakemake.input.manifest)
    analyze_store(
        snakemake.input.store,
        snakemake.output.result,
        rows=snakemake.params.rows,
        params=AnalysisParams.from_config(config),
        cluster=ClusterSettings.from_config(
            config, workers=snakemake.threads, memory_mb=snakemake.resources.mem_mb
        ),
        provenance={"config_hash": run_record(config)["config_hash"]},
        zarr_format=config["zarr_format"],
    )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
