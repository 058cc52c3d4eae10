"""Tests of chunkatlas.model: the traffic model, the cost fit and advice."""
