"""Replaying on a cluster reached over SSH: the connection, transfers, repro installed there,
the clusters of the user config."""
