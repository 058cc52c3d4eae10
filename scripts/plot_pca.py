"""Snakemake entry point: the PCA figure."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.report import chunk_title, plot_pca
from chunkatlas.store import read_store


def main(snakemake):
    title = chunk_title(
        snakemake.params.tissue, snakemake.wildcards.chunk, snakemake.params.orientation
    )
    with snakemake.params.reads.value.local_copy() as result:
        adata = read_store(result)
    plot_pca(adata, snakemake.output.plot, label_key=snakemake.params.label_key, title=title)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
