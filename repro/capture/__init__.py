"""Capture: list, hash, lock, run and record a project (see pipeline.capture)."""
