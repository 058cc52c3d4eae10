"""Embedded, Census-shaped demo atlas generator.

Writes a small TileDB-SOMA Experiment laid out like the CELLxGENE Census
(``obs``; ``ms['RNA'].var``; ``ms['RNA'].X['raw']`` holding integer counts stored
as float32) from a fixed seed, so the workflow can be exercised without network
access.

The simulation is split into pure functions (:func:`simulate_obs`,
:func:`simulate_var`, :func:`simulate_counts`) and one writer
(:func:`write_demo_atlas`).

Count model
-----------
Every cell type ``t`` has a relative expression profile ``p_t`` over genes (rows
sum to one). The profile starts from a heavy-tailed gene baseline (log
expression Gumbel-distributed: a Zipf-like top of a few very highly expressed
genes, many low ones, but no gene so low it is never seen), is perturbed mildly
per cell type, and then gets lineage-module genes (shared by related cell
types, e.g. all immune cells) and cell-type marker genes set far above the mean
gene. A cell ``c`` of type ``t`` gets a log-normal library size
``L_c`` and counts ``X[c, g] ~ Poisson(L_c * p_t[g] * G)`` with
``G ~ Gamma(theta_g, 1 / theta_g)``, i.e. negative-binomial counts with
gene-specific overdispersion ``1 / theta_g``. A cell left without any count
gets one count of its most expected gene, so no cell is empty (as after QC).

Datasets carry batch effects, as an atlas's do: each dataset ``d`` scales its
cells' library sizes by a log-normal depth factor and a random 5 % of the genes
by log-normal factors ``b_d[g]`` (its protocol's capture biases), so the
expected count is ``L_c * p_t[g] * b_d[g]``. An HVG selection over all cells
picks up those dataset-specific genes; one per dataset (``batch_key``) does not.

Randomness is drawn from independent streams derived from ``DemoSpec.seed``
with :class:`numpy.random.SeedSequence`. Counts are drawn per fixed chunk of
:data:`RNG_CHUNK_CELLS` cells, so a cell's counts depend only on the seed, its
position and the spec, never on ``block_cells`` or on how ``[start, stop)``
ranges are chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.ingest.demo._simulate import RNG_CHUNK_CELLS
    from chunkatlas.ingest.demo._simulate import STORED_OBS_COLUMNS
    from chunkatlas.ingest.demo._simulate import STORED_VAR_COLUMNS
    from chunkatlas.ingest.demo._simulate import dataset_effect
    from chunkatlas.ingest.demo._simulate import simulate_counts
    from chunkatlas.ingest.demo._simulate import simulate_obs
    from chunkatlas.ingest.demo._simulate import simulate_var
    from chunkatlas.ingest.demo._soma import write_demo_atlas
    from chunkatlas.ingest.demo._spec import DemoSpec
    from chunkatlas.ingest.demo._spec import DemoSpecError

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
