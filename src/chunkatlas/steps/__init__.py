"""One function per step of a run, each in one place: it takes typed settings
(:mod:`chunkatlas.settings`) and paths, never a config, and makes its own checks before the
work; the domain packages do the work.  The CLI and the workflow's scripts are thin adapters
that call them.

The steps: :func:`demo` and :func:`fetch` (:mod:`._ingest`); :func:`rechunk` and
:func:`consolidate` (:mod:`._rewrite`); :func:`analyze`, the one rule for the cells each Dask
task reads (:func:`cells_per_task`) and :func:`plot` (:mod:`._analyze`); :func:`remote` and
:func:`summary` (:mod:`._study`); :func:`advise` (:mod:`._advise`); the judgement of a
cost model by the layouts it picks, :func:`pick_layouts`, :func:`measure_picks` and
:func:`judge` (:mod:`._judge`); and the checks a run makes
before any job (:func:`check_run`, :mod:`._checks`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.steps._advise import advise
    from chunkatlas.steps._advise import DEFAULT_GENES
    from chunkatlas.steps._advise import DEFAULT_VALUES_PER_CELL
    from chunkatlas.steps._analyze import analyze
    from chunkatlas.steps._analyze import cells_per_task
    from chunkatlas.steps._analyze import plot
    from chunkatlas.steps._analyze import Served
    from chunkatlas.steps._checks import check_run
    from chunkatlas.steps._checks import check_source
    from chunkatlas.steps._ingest import demo
    from chunkatlas.steps._ingest import fetch
    from chunkatlas.steps._judge import check_judge
    from chunkatlas.steps._judge import judge
    from chunkatlas.steps._judge import measure_picks
    from chunkatlas.steps._judge import pick_layouts
    from chunkatlas.steps._judge import picked_layouts
    from chunkatlas.steps._rewrite import consolidate
    from chunkatlas.steps._rewrite import rechunk
    from chunkatlas.steps._study import remote
    from chunkatlas.steps._study import summary
    from chunkatlas.steps._study import SummaryPaths

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
