"""Snakemake entry point: build the embedded demo atlas."""

from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas
from chunkatlas.logs import run_snakemake_step

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: write_demo_atlas(snakemake.output.atlas, DemoSpec(**snakemake.params.spec)),
    )
