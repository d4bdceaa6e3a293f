"""Nile river annual flow at Aswan, 1871-1970: decade summary and a mean-shift change point.

Script version of analysis.ipynb (same computation). Reads data/nile.csv and writes
results/table.csv and results/figure.png.
"""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DATA = Path("data/nile.csv")
OUT = Path("results")


def load(path):
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    years = np.array([int(r["year"]) for r in rows])
    flow = np.array([float(r["flow"]) for r in rows])
    return years, flow


def stats_row(label, kind, years, values):
    return {
        "period": label,
        "kind": kind,
        "n": int(values.size),
        "mean": f"{values.mean():.2f}",
        "sd": f"{values.std(ddof=1):.2f}",
        "min": f"{values.min():.0f}",
        "max": f"{values.max():.0f}",
    }


def change_point(values):
    """Index k minimising the residual sum of squares of a two-mean model (split before k)."""
    n = values.size
    best_k, best_rss = None, np.inf
    for k in range(2, n - 1):
        a, b = values[:k], values[k:]
        rss = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
        if rss < best_rss:
            best_k, best_rss = k, rss
    return best_k, best_rss


def build_table(years, flow):
    rows = []
    for start in range(0, years.size, 10):
        y, v = years[start : start + 10], flow[start : start + 10]
        rows.append(stats_row(f"{y[0]}-{y[-1]}", "decade", y, v))
    k, _ = change_point(flow)
    rows.append(stats_row(f"{years[0]}-{years[k - 1]}", "segment", years[:k], flow[:k]))
    rows.append(stats_row(f"{years[k]}-{years[-1]}", "segment", years[k:], flow[k:]))
    rows.append(stats_row(f"{years[0]}-{years[-1]}", "all", years, flow))
    return rows, k


def plot(years, flow, k, path):
    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9})
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(
        years, flow, marker="o", markersize=3, linewidth=1, color="tab:blue", label="annual flow"
    )
    for seg_years, seg_flow in ((years[:k], flow[:k]), (years[k:], flow[k:])):
        ax.hlines(seg_flow.mean(), seg_years[0], seg_years[-1], colors="tab:red", linewidth=2)
    ax.axvline(
        years[k] - 0.5,
        color="gray",
        linestyle="--",
        linewidth=1,
        label=f"change point ({years[k - 1]}/{years[k]})",
    )
    ax.plot([], [], color="tab:red", linewidth=2, label="segment means")
    ax.set_xlabel("year")
    ax.set_ylabel(r"flow ($10^8\,\mathrm{m}^3$)")
    ax.set_title("Annual flow of the Nile at Aswan, 1871-1970")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    # No "Software" tEXt chunk, so the PNG bytes do not depend on the matplotlib version string.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main():
    years, flow = load(DATA)
    rows, k = build_table(years, flow)
    OUT.mkdir(exist_ok=True)
    with (OUT / "table.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    plot(years, flow, k, OUT / "figure.png")

    print(f"{'period':<10} {'kind':<8} {'n':>3} {'mean':>8} {'sd':>7} {'min':>5} {'max':>5}")
    for r in rows:
        print(
            f"{r['period']:<10} {r['kind']:<8} {r['n']:>3} {r['mean']:>8} {r['sd']:>7} {r['min']:>5} {r['max']:>5}"
        )
    print(f"change point: mean shifts between {years[k - 1]} and {years[k]}")


if __name__ == "__main__":
    main()
