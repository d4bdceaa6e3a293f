"""The analysis: imports the installed package (src/ is not on sys.path)."""

import datetime as dt
import json
from importlib.metadata import version
from pathlib import Path

import tidecal
from tidecal.calendar import add_lunar_month, spring_tide_months

assert version("tidecal") == "0.3.1"
assert "site-packages" in tidecal.__file__, tidecal.__file__
assert version("python-dateutil")  # from install_requires only

start = dt.datetime(2024, 1, 11, 11, 57)
result = {
    "convention": "setup.py project installed (src layout, install_requires)",
    "tidecal": version("tidecal"),
    "months": spring_tide_months(start, 4),
    "next": add_lunar_month(start).isoformat(),
}
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
