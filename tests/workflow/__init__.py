"""Whole-workflow tests: snakemake end to end, marked ``workflow``."""
