"""Write a summary folder and a tree of tables; only the CSVs are results.

GLOB_STUDY_VARIANT=1 (set by the test at replay) writes one file more and one fewer, as a
study whose outputs changed would.
"""

import os
from pathlib import Path

variant = os.environ.get("GLOB_STUDY_VARIANT") == "1"
Path("results/sub dir").mkdir(parents=True, exist_ok=True)
Path("results/run summary.txt").write_text("rows: 3\n")
Path("results/sub dir/a b.json").write_text('{"ok": true}\n')
for year in ("2023", "2024 q1"):
    folder = Path("tables") / year
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("not a result: only *.csv are\n")
if not variant:
    Path("tables/2023/first table.csv").write_text("a,b\n1,2\n")
Path("tables/2024 q1/second.csv").write_text("a,b\n3,4\n")
if variant:
    Path("tables/2024 q1/extra.csv").write_text("a,b\n5,6\n")
print("tables written")
