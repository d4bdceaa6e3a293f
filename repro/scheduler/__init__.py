"""Cluster schedulers: job scripts rendered from a run's job spec, and Slurm behind an interface."""
