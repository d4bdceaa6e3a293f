# %% [markdown]
# # Summary (writes results/verify.json)

# %%
import json
import runpy
from importlib.metadata import version
from pathlib import Path

explore = runpy.run_path("notebooks/01-explore.py")
major, minor = (int(x) for x in version("tabulate").split(".")[:2])
assert (major, minor) >= (0, 9), version("tabulate")
table = explore["tabulate"](explore["ROWS"], headers=["n", "n^2", "n^3"], tablefmt="plain")
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "no declaration file, [environment] packages",
                "table": table.splitlines()}, indent=1, sort_keys=True) + "\n"
)
