"""Snakemake entry point: the tissue x chunk size summary table, remote table and figures."""

from chunkatlas.logs import run_snakemake_step
from chunkatlas.summary import GridPoint, build_summary, remote_table
from chunkatlas.summary_figures import plot_remote, plot_steps, plot_store_size


def main(snakemake):
    points = [GridPoint(**p) for p in snakemake.params.points]
    summary = build_summary(points)
    summary.to_csv(snakemake.output.table, sep="\t", index=False)
    remote = remote_table(points)
    remote.to_csv(snakemake.output.remote, sep="\t", index=False)
    plot_steps(summary, snakemake.output.steps)
    plot_store_size(summary, snakemake.output.store_size)
    plot_remote(remote, snakemake.output.remote_plot)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
