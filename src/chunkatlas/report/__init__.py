"""What a run reports: the tables (:mod:`._tables`: summary, passes, remote), figures (of the
workflow's jobs, :mod:`._step_figures`; of the remote reads and the cost fit,
:mod:`._study_figures`; the PCA plot, :mod:`._pca_figure`; what they draw with,
:mod:`._figures`), the first page (:mod:`._pages`) and the provenance of the results
(:mod:`._provenance`). The model they report (traffic, cost fit, advice) is
:mod:`chunkatlas.model`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.report._pages import first_page
    from chunkatlas.report._figures import plot_message
    from chunkatlas.report._step_figures import plot_moved
    from chunkatlas.report._step_figures import plot_passes
    from chunkatlas.report._step_figures import plot_steps
    from chunkatlas.report._step_figures import plot_store_size
    from chunkatlas.report._study_figures import plot_cost_fit
    from chunkatlas.report._study_figures import plot_geometry
    from chunkatlas.report._study_figures import plot_remote
    from chunkatlas.report._pca_figure import plot_pca
    from chunkatlas.report._provenance import software_versions
    from chunkatlas.report._tables import build_summary
    from chunkatlas.report._tables import chunk_title
    from chunkatlas.report._tables import GridPoint
    from chunkatlas.report._tables import ordered_passes
    from chunkatlas.report._tables import PASSES
    from chunkatlas.report._tables import passes_table
    from chunkatlas.report._tables import read_benchmark
    from chunkatlas.report._tables import reference_geometry
    from chunkatlas.report._tables import remote_table

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
