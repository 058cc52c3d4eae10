"""Tests of chunkatlas.ingest: the demo atlas and fetching sources into stores."""
