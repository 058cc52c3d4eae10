"""Re-writing stores: store geometry (chunk and shard shapes, codec presets, :mod:`._geometry`),
the rechunking writer (:mod:`._rechunk`) and consolidation with the manifest, a store's last
step (:mod:`._consolidate`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.rewrite._consolidate import consolidate_store
    from chunkatlas.rewrite._geometry import CODECS
    from chunkatlas.rewrite._geometry import decode_pass_seconds
    from chunkatlas.rewrite._geometry import DEFAULT_CODEC
    from chunkatlas.rewrite._geometry import ORIENTATIONS
    from chunkatlas.rewrite._rechunk import rechunk_store

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
