"""Tests of chunkatlas.analysis: both engines against the in-memory oracle, the counts checks."""
