"""Snakemake entry point: pay one-off start-up costs (numba compilation) before the timed jobs."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

import yaml

from chunkatlas.analysis import warmup
from chunkatlas.workflow import run_job


def main(snakemake):
    seconds = warmup(snakemake.params.analysis.value, snakemake.params.zarr_format)
    with open(snakemake.output.seconds, "w") as handle:
        yaml.safe_dump({"warmup_seconds": seconds}, handle)


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
