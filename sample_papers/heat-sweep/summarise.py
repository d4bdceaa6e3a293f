"""Aggregate the per-seed heat-equation summaries into results/summary.json."""

import json
import re
import statistics
from pathlib import Path

METRICS = [
    "initial_heat",
    "final_heat",
    "energy_ratio",
    "final_peak_abs",
    "max_abs_error_vs_exact",
]


def sig(value, digits=12):
    return float(f"{value:.{digits}g}")


def main():
    out = Path("results")
    files = {}
    for path in out.glob("seed*.json"):
        m = re.fullmatch(r"seed(-?\d+)\.json", path.name)
        if m:
            files[int(m.group(1))] = path
    if not files:
        raise SystemExit("no results/seed*.json files found; run simulate.py first")

    seeds = sorted(files)
    runs = [json.loads(files[s].read_text()) for s in seeds]

    summary = {"n_seeds": len(seeds), "seeds": seeds, "metrics": {}}
    for name in METRICS:
        values = [run[name] for run in runs]
        summary["metrics"][name] = {
            "mean": sig(statistics.fmean(values)),
            "stdev": sig(statistics.stdev(values)) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }

    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(seeds)} seeds)")


if __name__ == "__main__":
    main()
