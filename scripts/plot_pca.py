"""Snakemake entry point: the PCA figure."""

from chunkatlas.logs import run_snakemake_step
from chunkatlas.report._pca_figure import plot_pca
from chunkatlas.report._tables import chunk_title
from chunkatlas.rewrite._consolidate import load_manifest
from chunkatlas.store._layout import read_store


def main(snakemake):
    title = chunk_title(
        snakemake.params.tissue,
        snakemake.wildcards.chunk,
        snakemake.params.dense_axis,
        sparse=load_manifest(snakemake.input.manifest)["x_sparse"],
    )
    plot_pca(
        read_store(snakemake.input.result),
        snakemake.output.plot,
        label_key=snakemake.params.label_key,
        title=title,
    )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
