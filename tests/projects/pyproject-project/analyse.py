import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import versionscan
from versionscan import newest_per_series

assert version("versionscan") == "1.2.0"
assert "site-packages" in versionscan.__file__, versionscan.__file__
try:
    version("pytest")
    raise AssertionError("pytest is installed: the dev extra was not requested")
except PackageNotFoundError:
    pass

tags = Path("data/tags.txt").read_text().split()
result = {
    "convention": "pyproject.toml [project] + setuptools build-system",
    "newest": newest_per_series(tags),
}
assert result["newest"] == {"1.0": "1.0.1", "1.1": "1.1.2", "2.0": "2.0.0"}, result
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
