"""Snakemake entry point: the regret of a tissue's picks and the cost model's errors on its
reads (:func:`chunkatlas.steps.judge`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.workflow import run_job


def main(snakemake):
    output = snakemake.output
    steps.judge(
        snakemake.input.picks,
        list(zip(snakemake.params.names, snakemake.input.grid, strict=True)),
        snakemake.input.picked,
        regret=output.regret,
        predicted=output.predicted,
        figure=output.figure,
        text=output.text,
        model=snakemake.params.model,
    )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
