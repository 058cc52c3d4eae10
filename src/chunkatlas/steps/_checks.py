"""The checks a run makes before any job: the source exists (or is built), and what its
metadata tells is checked against the settings, one line each (:func:`check_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:
    from chunkatlas.ingest import SourceFacts, SourceSettings
    from chunkatlas.ingest.demo import DemoSpec
    from chunkatlas.settings import Settings


def check_source(source: SourceSettings, demo: DemoSpec | None = None, *, name: str) -> None:
    """Refuse a local source that does not exist (``name``: how the message names it, e.g. the
    config key); a remote one, a scanpy dataset and the demo atlas (``demo``: built by the
    run) are not looked for here."""
    from chunkatlas.store import is_remote

    uri = source.uri
    if demo is not None or is_remote(uri) or uri.startswith(("scanpy:", "file://")):
        return
    if not Path(uri).exists():
        raise ChunkatlasError(
            f"{name}: {uri!r} does not exist (a local path, an http(s):// or s3:// URL, "
            "scanpy:NAME, or give demo_atlas to build the demo atlas there)"
        )


def check_run(settings: Settings) -> SourceFacts | None:
    """Every check a run makes before any job: the source exists, its tissues, obs columns,
    layer or raw, var index, genes and counts (a sample of X) suit the settings, and the
    analysis's parameters suit the source (its genes, its smallest tissue's cells, its obs
    columns: ``batch_key``, ``label_key``).  Returns the source's facts (None: a scanpy
    dataset that downloads, checked when fetched).

    Raises
    ------
    chunkatlas.ingest.SourceUnreachable
        The source could not be read over the network (a dry run may plan without it).
    ChunkatlasError
        One line naming the config key and what the source has.
    """
    from chunkatlas.ingest import inspect_source

    check_source(settings.source, settings.demo, name="config source.uri")
    facts = inspect_source(
        settings.source, settings.tissues, demo=settings.demo, remote=settings.source_remote
    )
    if facts is not None:
        settings.analysis.check_data(facts, label_key=settings.label_key)
    if settings.judge.enabled:
        from chunkatlas.steps._judge import check_judge

        check_judge(settings.judge.model, settings.remote.backends)
    return facts
