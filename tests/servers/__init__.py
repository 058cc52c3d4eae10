"""Tests that start servers as a whole (SLURM, moto S3, nginx, Dask schedulers): marked
``servers``."""
