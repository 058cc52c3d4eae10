"""Tests of chunkatlas.store, the bottom layer: layout, opening, atomic writes, the manifest,
guarded remote reads, checked chunk reads, read counting, lazy X and masked credentials."""
