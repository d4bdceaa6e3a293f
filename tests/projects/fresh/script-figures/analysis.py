"""Monthly climatology and yearly anomalies of sea-surface temperature."""
import csv
import os

import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUT = "figures"

def load(path="data/sst.csv"):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    years = np.array([int(r["year"]) for r in rows])
    months = np.array([int(r["month"]) for r in rows])
    sst = np.array([float(r["sst"]) for r in rows])
    return years, months, sst

def main():
    years, months, sst = load()
    clim = np.array([sst[months == m].mean() for m in range(1, 13)])
    anomaly = sst - clim[months - 1]
    yearly = np.array([anomaly[years == y].mean() for y in np.unique(years)])
    os.makedirs(OUT, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    ax.plot(np.unique(years), yearly, color="tab:red")
    ax.set_xlabel("year")
    ax.set_ylabel("anomaly (K)")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "anomaly.png"), metadata={"Software": None})
    with open(os.path.join(OUT, "summary.csv"), "w") as fh:
        fh.write("year,anomaly\n")
        for y, a in zip(np.unique(years), yearly):
            fh.write("%d,%.6f\n" % (y, a))
    with open(os.path.join(OUT, "monthly climatology.csv"), "w") as fh:
        fh.write("month,sst\n")
        for m, c in enumerate(clim, 1):
            fh.write("%d,%.6f\n" % (m, c))
    print("trend: %.4f K/yr" % np.polyfit(np.unique(years), yearly, 1)[0])

if __name__ == "__main__":
    main()
