"""The product's model: what a layout makes a reader fetch (:mod:`._traffic`: the chunks and
shards each access pattern touches), what that costs in seconds (:mod:`._fit`: the cost model
fitted on a study's reads, its predictions and recommendation), and which layout to write an
atlas in (:mod:`._advice`, ``chunkatlas advise``; the cost model it uses, :mod:`._choice`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.model._advice import advice_text
    from chunkatlas.model._advice import advise_mix
    from chunkatlas.model._advice import best_per_pattern
    from chunkatlas.model._advice import predictions
    from chunkatlas.model._advice import NEAR_TIE
    from chunkatlas.model._advice import within_cap
    from chunkatlas.model._advice import with_store_objects
    from chunkatlas.model._objects import columns_of
    from chunkatlas.model._objects import Columns
    from chunkatlas.model._objects import DEMO_COLUMNS
    from chunkatlas.model._objects import open_requests
    from chunkatlas.model._objects import store_objects
    from chunkatlas.model._prices import load_prices
    from chunkatlas.model._prices import Prices
    from chunkatlas.model._text import money_text
    from chunkatlas.model._choice import choose_cost_model
    from chunkatlas.model._cost_model import build_cost_model
    from chunkatlas.model._cost_model import CostModel
    from chunkatlas.model._cost_model import load_cost_model
    from chunkatlas.model._choice import REFERENCE_ORIGIN
    from chunkatlas.model._choice import RUN_MODELS
    from chunkatlas.model._fit import BackendFit
    from chunkatlas.model._fit import CostFit
    from chunkatlas.model._fit import fit_costs
    from chunkatlas.model._fit import predicted
    from chunkatlas.model._fit import recommend
    from chunkatlas.model._fit import recommendation_sentence
    from chunkatlas.model._fit import recommendation_text
    from chunkatlas.model._fit import shard_text
    from chunkatlas.model._own_encoding import EncodingSample
    from chunkatlas.model._own_encoding import measure_encodings
    from chunkatlas.model._own_encoding import own_encodings
    from chunkatlas.model._own_encoding import source_encodings
    from chunkatlas.model._sources import atlas_of
    from chunkatlas.model._judge import advised_picks
    from chunkatlas.model._judge import model_of_picks
    from chunkatlas.model._judge import predicted_reads
    from chunkatlas.model._judge import prediction_errors
    from chunkatlas.model._judge import pure_rows
    from chunkatlas.model._judge import store_name
    from chunkatlas.model._judge import regret_table
    from chunkatlas.model._reader import DEFAULT_READER
    from chunkatlas.model._reader import Reader
    from chunkatlas.model._reader import READERS
    from chunkatlas.model._traffic import Atlas
    from chunkatlas.model._traffic import Encoding
    from chunkatlas.model._traffic import encodings
    from chunkatlas.model._traffic import fit_decode
    from chunkatlas.model._traffic import Layout
    from chunkatlas.model._traffic import predict_traffic
    from chunkatlas.model._traffic import X_PATTERNS

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
