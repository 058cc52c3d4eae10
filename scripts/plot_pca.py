"""Snakemake entry point: the PCA figure."""

import anndata as ad

from chunkatlas.logs import run_snakemake_step
from chunkatlas.plot_pca import plot_pca

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: plot_pca(
            ad.read_zarr(snakemake.input.result),
            snakemake.output.plot,
            label_key=snakemake.params.label_key,
            title=snakemake.params.title,
        ),
    )
