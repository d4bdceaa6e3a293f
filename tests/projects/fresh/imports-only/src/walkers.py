import numpy as np


def walk(rng, n, steps):
    return np.cumsum(rng.choice([-1, 1], size=(n, steps)), axis=1)
