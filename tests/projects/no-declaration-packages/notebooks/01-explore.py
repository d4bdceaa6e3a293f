# %% [markdown]
# # Exploration: squares and cubes

# %%
from tabulate import tabulate

ROWS = [(n, n * n, n**3) for n in range(1, 6)]
print(tabulate(ROWS, headers=["n", "n^2", "n^3"]))
