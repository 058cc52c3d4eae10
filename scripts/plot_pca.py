"""Snakemake entry point: the PCA figure."""

from chunkatlas.consolidate import load_manifest
from chunkatlas.logs import run_snakemake_step
from chunkatlas.plot_pca import plot_pca
from chunkatlas.store.layout import read_store
from chunkatlas.summary import chunk_title


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
