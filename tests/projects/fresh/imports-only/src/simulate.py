#!/usr/bin/env python
"""Random-walk simulation: parameters from config/params.yaml, results in output/."""
import json
import os
import sys

import numpy as np
import yaml

from walkers import walk  # src/walkers.py, beside this script

try:
    import numba  # optional speed-up, not needed
except ImportError:
    numba = None


def main(config="config/params.yaml"):
    with open(config) as fh:
        params = yaml.safe_load(fh)
    rng = np.random.default_rng(params["seed"])
    paths = walk(rng, params["walkers"], params["steps"])
    final = paths[:, -1]
    os.makedirs("output", exist_ok=True)
    np.save("output/paths.npy", paths)
    with open("output/summary.json", "w") as fh:
        json.dump({"mean": round(float(final.mean()), 10), "var": round(float(final.var()), 10)}, fh, indent=1, sort_keys=True)
    print("simulated", params["walkers"], "walkers", file=sys.stderr)


if __name__ == "__main__":
    main()
