"""Tests of chunkatlas.study: measuring access patterns over loopback servers."""
