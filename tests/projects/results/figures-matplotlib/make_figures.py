"""Draw two figures into figures/, as PDF and PNG, with matplotlib's default settings."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = Path("figures")
(out / "detail").mkdir(parents=True, exist_ok=True)

xs = [i / 10 for i in range(100)]
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(xs, [x * x for x in xs], label="x squared")
ax.set_title("A curve")
ax.legend()
fig.savefig(out / "curve one.pdf")
fig.savefig(out / "curve one.png", dpi=80)
plt.close(fig)

fig, ax = plt.subplots(figsize=(3, 3))
ax.scatter(xs[::7], xs[::-7])
fig.savefig(out / "detail" / "scatter.pdf")
plt.close(fig)
print("wrote", sorted(p.as_posix() for p in out.rglob("*") if p.is_file()))
