"""Tests of chunkatlas.report: tables, figures and the cost model."""
