"""Summaries per station: run from the repository root, python analysis/run.py."""
import json
import os

from toolz import groupby, valmap

readings = [line.split(",") for line in open("analysis/readings.csv").read().split()[1:]]
by_station = groupby(lambda r: r[0], readings)
means = valmap(lambda rows: round(sum(float(r[1]) for r in rows) / len(rows), 6), by_station)
os.makedirs("analysis/out", exist_ok=True)
with open("analysis/out/means.json", "w") as fh:
    json.dump(means, fh, indent=1, sort_keys=True)
