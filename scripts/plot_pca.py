"""Snakemake entry point: the PCA figure."""

from chunkatlas.logs import run_snakemake_step
from chunkatlas.plot_pca import plot_pca
from chunkatlas.store.layout import read_store

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: plot_pca(
            read_store(snakemake.input.result),
            snakemake.output.plot,
            label_key=snakemake.params.label_key,
            title=snakemake.params.title,
        ),
    )
