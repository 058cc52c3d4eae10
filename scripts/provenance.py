"""Snakemake entry point: the run's config, hash and software versions."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

import yaml

from chunkatlas.report import software_versions
from chunkatlas.workflow import run_job


def main(snakemake):
    with open(snakemake.output.config, "w") as handle:
        yaml.safe_dump(snakemake.params.record.value, handle, sort_keys=False)
    software_versions().to_csv(snakemake.output.versions, sep="\t", index=False)


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
