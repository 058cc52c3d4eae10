"""Snakemake entry point: consolidate a store's metadata and write its manifest."""

from chunkatlas.logs import run_snakemake_step
from chunkatlas.report._provenance import run_record
from chunkatlas.rewrite._consolidate import consolidate_store

if __name__ == "__main__":
    # The hash comes from the config inside the job, not from params: params are rerun triggers.
    provenance = {"config_hash": run_record(snakemake.config)["config_hash"]}
    run_snakemake_step(
        snakemake,
        lambda: consolidate_store(snakemake.input.store, snakemake.output.manifest, provenance),
    )
