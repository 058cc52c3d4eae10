"""Tests of chunkatlas.report: tables, figures and the first page."""
