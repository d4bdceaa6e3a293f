"""Prove the apt.txt package is installed: run its binary."""

import json
import shutil
import subprocess
from pathlib import Path

import colorama

jq = shutil.which("jq")
assert jq, "jq (from apt.txt) is not on PATH"
out = subprocess.run(
    [jq, "-c", "sort_by(.id) | map({id, n: (.tags | length)})", "records.json"],
    capture_output=True, text=True, check=True,
).stdout
assert json.loads(out) == [{"id": 1, "n": 0}, {"id": 2, "n": 1}, {"id": 3, "n": 2}], out
assert colorama.Fore.RED == "\x1b[31m"
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "apt.txt", "jq_output": json.loads(out)}, indent=1, sort_keys=True)
    + "\n"
)
