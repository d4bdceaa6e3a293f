"""Replay: verify, unpack, rebuild the environment, re-run and compare (see pipeline.replay)."""
