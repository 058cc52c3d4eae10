"""The Snakemake adapter: everything that knows chunkatlas runs as a Snakemake workflow, and
nothing the steps need to run on their own.

A rule declares each store's completion record, never the store's directory
(:mod:`._stores`: how a job finds its stores from those paths, in a run's bucket too, and moves
them); :mod:`._job` runs a job (its log, one-line errors and interrupts, the store it writes
kept whole until the new one is); :mod:`._housekeeping` keeps records true to the stores on
disk (a store deleted by hand runs its job again; ``--delete-all-output`` removes stores).

Nothing below this package imports it; ``tests/test_import_layers.py`` fails the day one does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.workflow._cluster import close_run_clusters
    from chunkatlas.workflow._cluster import open_run_clusters
    from chunkatlas.workflow._housekeeping import delete_stores
    from chunkatlas.workflow._housekeeping import forget_lost_stores
    from chunkatlas.workflow._job import job_bucket
    from chunkatlas.workflow._job import input_store
    from chunkatlas.workflow._job import replaced_on_success
    from chunkatlas.workflow._job import run_job
    from chunkatlas.workflow._params import Untracked
    from chunkatlas.workflow._rules import PER_TISSUE_STEPS
    from chunkatlas.workflow._rules import STEPS
    from chunkatlas.workflow._job import output_store
    from chunkatlas.workflow._stores import bucket_of_storage_settings
    from chunkatlas.workflow._stores import local_copies
    from chunkatlas.workflow._stores import record_of
    from chunkatlas.workflow._stores import store_in
    from chunkatlas.workflow._stores import store_of
    from chunkatlas.workflow._stores import WorkflowStore

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
