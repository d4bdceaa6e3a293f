"""Summary statistics, regressions and a four-panel figure for Anscombe's quartet.

Reads data/anscombe.csv and writes results/metrics.json and results/figure.png.
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DATA = Path("data/anscombe.csv")
OUT = Path("results")


def sig(value, digits=12):
    """Round to fixed significant digits so the JSON is stable and readable."""
    return float(f"{value:.{digits}g}")


def load(path):
    groups = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            xs, ys = groups.setdefault(row["dataset"], ([], []))
            xs.append(float(row["x"]))
            ys.append(float(row["y"]))
    return {name: (np.array(xs), np.array(ys)) for name, (xs, ys) in groups.items()}


def describe(x, y):
    n = x.size
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    sxx, syy, sxy = (dx * dx).sum(), (dy * dy).sum(), (dx * dy).sum()
    slope = sxy / sxx
    intercept = my - slope * mx
    r = sxy / np.sqrt(sxx * syy)
    resid = y - (intercept + slope * x)
    return {
        "n": int(n),
        "mean_x": sig(mx),
        "mean_y": sig(my),
        "var_x": sig(sxx / (n - 1)),
        "var_y": sig(syy / (n - 1)),
        "correlation": sig(r),
        "slope": sig(slope),
        "intercept": sig(intercept),
        "r_squared": sig(r * r),
        "residual_sd": sig(np.sqrt((resid * resid).sum() / (n - 2))),
    }


def plot(groups, metrics, path):
    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9})
    fig, axes = plt.subplots(2, 2, figsize=(8, 6), sharex=True, sharey=True)
    line_x = np.array([2.0, 20.0])
    for ax, (name, (x, y)) in zip(axes.flat, groups.items()):
        m = metrics[name]
        ax.scatter(x, y, s=28, color="tab:orange", edgecolor="black", linewidth=0.5, zorder=3)
        ax.plot(line_x, m["intercept"] + m["slope"] * line_x, color="tab:blue", linewidth=1.2)
        ax.set_title(f"Dataset {name}")
        ax.text(
            0.04,
            0.95,
            f"y = {m['intercept']:.2f} + {m['slope']:.3f} x\nr = {m['correlation']:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
        ax.set_xlim(2, 20)
        ax.set_ylim(2, 14)
        ax.grid(True, linewidth=0.3, alpha=0.5)
    for ax in axes[1]:
        ax.set_xlabel("x")
    for ax in axes[:, 0]:
        ax.set_ylabel("y")
    fig.suptitle("Anscombe's quartet: same statistics, different data")
    fig.tight_layout()
    # Drop the "Software" tEXt chunk (matplotlib version) so the PNG bytes depend only on the pixels.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main():
    groups = load(DATA)
    metrics = {name: describe(x, y) for name, (x, y) in groups.items()}
    OUT.mkdir(exist_ok=True)
    (OUT / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot(groups, metrics, OUT / "figure.png")
    for name, m in metrics.items():
        print(
            f"{name:>3}: mean_y={m['mean_y']:.3f} var_y={m['var_y']:.3f} "
            f"r={m['correlation']:.3f} y={m['intercept']:.2f}+{m['slope']:.3f}x"
        )


if __name__ == "__main__":
    main()
