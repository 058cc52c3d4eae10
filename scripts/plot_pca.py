"""Snakemake entry point: the PCA figure (:func:`chunkatlas.steps.plot`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.report import chunk_title
from chunkatlas.workflow import input_store, run_job


def main(snakemake):
    params = snakemake.params
    title = chunk_title(params.tissue, snakemake.wildcards.chunk, params.orientation)
    with input_store(snakemake, "result").local_copy() as result:
        steps.plot(result, snakemake.output.plot, label_key=params.label_key, title=title)


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
