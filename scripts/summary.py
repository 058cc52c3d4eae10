"""Snakemake entry point: the tissue x chunk size summary table, remote table and figures."""

from chunkatlas.figures import plot_remote, plot_steps, plot_store_size
from chunkatlas.logs import run_snakemake_step
from chunkatlas.summary import GridPoint, build_summary, remote_table


def main(snakemake):
    points = [GridPoint(**p) for p in snakemake.params.points]
    summary = build_summary(points)
    summary.to_csv(snakemake.output.table, sep="\t", index=False)
    remote = remote_table(points)
    remote.to_csv(snakemake.output.remote, sep="\t", index=False)
    plot_steps(summary, snakemake.output.steps)
    plot_store_size(summary, snakemake.output.store_size)
    if len(remote):
        plot_remote(remote, snakemake.output.remote_plot)
    else:  # remote accounting switched off: say so in the figure's place
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "remote accounting disabled (remote.enabled: false)", ha="center")
        ax.axis("off")
        fig.savefig(snakemake.output.remote_plot)
        plt.close(fig)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
