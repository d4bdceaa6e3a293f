"""1D heat equation with a random initial condition, solved by finite differences.

    u_t = alpha * u_xx  on 0 < x < 1,  u(0, t) = u(1, t) = 0

The initial condition is a random Fourier sine series whose coefficients are
drawn from a seeded generator, so the exact solution is known in closed form
and the numerical error can be reported alongside the physical summaries.

Usage: python simulate.py --seed 3   ->  results/seed3.json
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

ALPHA = 1.0  # diffusivity
NX = 201  # grid points including both boundaries
N_MODES = 20  # Fourier modes in the random initial condition
T_END = 0.02  # final time
CFL = 0.4  # alpha * dt / dx**2 (explicit scheme is stable for <= 0.5)


def sig(value, digits=12):
    """Round to a fixed number of significant digits for stable JSON output."""
    return float(f"{value:.{digits}g}")


def trapezoid(y, dx):
    return float(dx * (y.sum() - 0.5 * (y[0] + y[-1])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    k = np.arange(1, N_MODES + 1)
    coeffs = rng.standard_normal(N_MODES) / k  # red-noise spectrum

    x = np.linspace(0.0, 1.0, NX)
    dx = x[1] - x[0]
    modes = np.sin(np.pi * np.outer(k, x))  # (N_MODES, NX)
    u0 = (coeffs[:, None] * modes).sum(axis=0)
    u0[0] = u0[-1] = 0.0

    dt = CFL * dx**2 / ALPHA
    n_steps = int(math.ceil(T_END / dt))
    dt = T_END / n_steps
    r = ALPHA * dt / dx**2

    u = u0.copy()
    for _ in range(n_steps):
        u[1:-1] = u[1:-1] + r * (u[2:] - 2.0 * u[1:-1] + u[:-2])

    decay = np.exp(-ALPHA * (np.pi * k) ** 2 * T_END)
    exact = ((coeffs * decay)[:, None] * modes).sum(axis=0)
    exact[0] = exact[-1] = 0.0

    energy0 = trapezoid(u0**2, dx)
    energy1 = trapezoid(u**2, dx)
    i_max = int(np.argmax(np.abs(u)))

    summary = {
        "seed": args.seed,
        "alpha": ALPHA,
        "nx": NX,
        "n_steps": n_steps,
        "dt": sig(dt),
        "t_end": T_END,
        "initial_heat": sig(trapezoid(u0, dx)),
        "final_heat": sig(trapezoid(u, dx)),
        "initial_energy": sig(energy0),
        "final_energy": sig(energy1),
        "energy_ratio": sig(energy1 / energy0),
        "final_peak_abs": sig(float(np.abs(u[i_max]))),
        "final_peak_x": sig(float(x[i_max])),
        "max_abs_error_vs_exact": sig(float(np.max(np.abs(u - exact))), 6),
    }

    out = Path("results")
    out.mkdir(exist_ok=True)
    path = out / f"seed{args.seed}.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
