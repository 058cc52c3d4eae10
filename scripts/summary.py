"""Snakemake entry point: the tissue x chunk size summary table."""

from chunkatlas.logs import run_snakemake_step
from chunkatlas.summary import GridPoint, build_summary

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: build_summary([GridPoint(**p) for p in snakemake.params.points]).to_csv(
            snakemake.output.table, sep="\t", index=False
        ),
    )
