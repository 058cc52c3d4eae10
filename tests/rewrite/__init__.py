"""Tests of chunkatlas.rewrite: geometry, rechunking and consolidation."""
