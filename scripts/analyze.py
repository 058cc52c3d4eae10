"""Snakemake entry point: HVG and PCA on a Dask cluster.

The guard matters: Dask's worker processes re-import the main module.
"""

from chunkatlas.analyze import AnalysisParams, analyze_store
from chunkatlas.logs import run_snakemake_step
from chunkatlas.manifest import verify_store
from chunkatlas.provenance import run_record


def main(snakemake):
    verify_store(snakemake.input.store, snakemake.input.manifest)
    analysis = snakemake.params.analysis
    dask = snakemake.params.dask
    analyze_store(
        snakemake.input.store,
        snakemake.output.result,
        rows=snakemake.params.chunk,
        params=AnalysisParams(
            flavor=analysis["flavor"],
            n_top_genes=analysis["n_top_genes"],
            n_comps=analysis["n_comps"],
            engine=analysis["engine"],
        ),
        workers=snakemake.threads,
        memory_mb=snakemake.resources.mem_mb,
        scheduler_address=dask["scheduler_address"],
        connect_timeout=dask["connect_timeout"],
        large_graph_warning_threshold=dask["large_graph_warning_threshold"],
        cluster=dask["cluster"],
        slurm_options=dask["slurm"],
        provenance={"config_hash": run_record(snakemake.config)["config_hash"]},
        zarr_format=snakemake.params.zarr_format,
    )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
