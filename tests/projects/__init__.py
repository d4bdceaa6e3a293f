"""Small projects written the way real repositories declare their environment (one
repo2docker convention, or combination, each), used by tests/integration/test_conventions.py
and benchmarks/bench_fidelity.py. See helpers.py."""
