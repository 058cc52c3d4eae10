"""What a run reports: the tables (:mod:`._tables`: summary, passes, remote), figures
(:mod:`._figures`; the PCA plot in :mod:`._pca_figure`), the cost model and its recommendation
(:mod:`._cost_model`) and the provenance of the results (:mod:`._provenance`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.report._advice import advice_text
    from chunkatlas.report._advice import advise_mix
    from chunkatlas.report._advice import atlas_of
    from chunkatlas.report._advice import best_per_pattern
    from chunkatlas.report._advice import build_cost_model
    from chunkatlas.report._advice import CostModel
    from chunkatlas.report._advice import load_cost_model
    from chunkatlas.report._advice import predictions
    from chunkatlas.report._traffic import Atlas
    from chunkatlas.report._traffic import Encoding
    from chunkatlas.report._traffic import Layout
    from chunkatlas.report._traffic import predict_traffic
    from chunkatlas.report._traffic import X_PATTERNS
    from chunkatlas.report._cost_model import first_page
    from chunkatlas.report._cost_model import fit_costs
    from chunkatlas.report._cost_model import recommend
    from chunkatlas.report._cost_model import recommendation_text
    from chunkatlas.report._figures import plot_cost_fit
    from chunkatlas.report._figures import plot_geometry
    from chunkatlas.report._figures import plot_message
    from chunkatlas.report._figures import plot_moved
    from chunkatlas.report._figures import plot_passes
    from chunkatlas.report._figures import plot_remote
    from chunkatlas.report._figures import plot_steps
    from chunkatlas.report._figures import plot_store_size
    from chunkatlas.report._pca_figure import plot_pca
    from chunkatlas.report._provenance import run_record
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
    from chunkatlas.report._tables import PER_TISSUE_STEPS
    from chunkatlas.report._tables import STEPS

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
