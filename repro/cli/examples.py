"""The examples at the foot of each command's help screen (and in docs/cli.md), and each
command's one line in `repro --help` (short enough for 80 columns)."""

from __future__ import annotations

SHORT_HELP: dict[str, str] = {
    "repro init": "Write repro.toml from what the project has",
    "repro capture": "Build a capsule: code, locked deps, data, runs, results",
    "repro verify": "Check a capsule's checksums and signature",
    "repro inspect": "Show what a capsule holds",
    "repro replay": "Re-run a capsule's study and compare every result",
    "repro diff": "What changed between two capsules",
    "repro publish": "Deposit a capsule on Zenodo (a draft unless --publish)",
    "repro fetch": "Download a published capsule from Zenodo, verify it",
    "repro verify-attestation": "Check signed replay attestations, offline",
    "repro history": "The replays this machine made",
    "repro keys generate": "Create a signing key pair (Ed25519)",
    "repro keys list": "Your signing keys and the keys you trust",
    "repro keys export": "Print a public key (PEM), to hand out",
    "repro keys trust": "Add someone's public key to the trust store",
    "repro keys untrust": "Remove a key from the trust store",
    "repro status": "A detached replay's points: queued, running, done",
    "repro collect": "Gather a detached replay's outputs and compare them",
    "repro cat": "Print one file of a capsule, after verifying it",
    "repro extract": "Unpack a capsule's files (all or some) into a folder",
    "repro shell": "A shell in a capsule's locked environment",
    "repro exec": "Run a command in a capsule's locked environment",
    "repro restamp": "Fix a capsule's metadata or sign it again, no re-run",
    "repro cache list": "repro's caches: sizes and last uses",
    "repro cache prune": "Remove cache entries not used lately",
}

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "repro": [
        ("repro init --try --yes", "write repro.toml for the project here"),
        ("repro capture -o ../study.capsule.tgz", "pack it into a capsule"),
        ("repro replay ../study.capsule.tgz --report report.html", "re-run it, compare"),
        ("repro capture --help", "one command's options"),
    ],
    "repro init": [
        ("repro init", "propose runs for the project here, ask which"),
        ("repro init --try --yes", "the top proposal, run once to find its outputs"),
        ("repro init study --run 'python analyse.py'", "record this command as the run"),
    ],
    "repro capture": [
        ("repro capture", "the project here, as repro.toml says -> ./NAME.capsule.tgz"),
        ("repro capture study -o study.capsule.tgz", "another folder, a chosen file"),
        (
            "repro capture --run 'python fit.py' --output results/fit.json",
            "no repro.toml needed",
        ),
        ("repro capture --no-run --target docker", "record the runs' outputs as they are"),
        (
            "repro capture --target slurm --workdir ~/scratch/repro",
            "expected results from the cluster: one Slurm array per run",
        ),
    ],
    "repro verify": [
        ("repro verify study.capsule.tgz", "every checksum and the signature"),
        ("repro verify study.capsule.tgz --require-trusted", "exit 4 unless a key you trust"),
    ],
    "repro inspect": [
        ("repro inspect study.capsule.tgz", "what the capsule holds"),
        ("repro inspect study.capsule.tgz --json", "the same, as JSON"),
    ],
    "repro replay": [
        ("repro replay study.capsule.tgz", "docker if an engine answers, else local"),
        ("repro replay study.capsule.tgz --target local --report report.html", ""),
        ("repro replay 10.5281/zenodo.1234567", "download from Zenodo, then replay"),
        ("repro replay study.capsule.tgz --run fit --point seed=3", "one point only"),
    ],
    "repro diff": [
        ("repro diff v1.capsule.tgz v2.capsule.tgz", "what changed between two captures"),
    ],
    "repro keys": [
        ("repro keys generate", "a signing key (capture then signs with it)"),
        ("repro keys export > alice.pub", "your public key, to hand out"),
        ("repro keys trust alice.pub --name Alice", "trust someone's key"),
    ],
    "repro keys generate": [
        ("repro keys generate", "the default key"),
        ("repro keys generate --name lab --passphrase", "another key, encrypted"),
    ],
    "repro keys list": [("repro keys list", "")],
    "repro keys export": [
        ("repro keys export > mykey.pub", ""),
        ("repro keys export --name lab --json", "the PEM inside JSON"),
    ],
    "repro keys trust": [("repro keys trust alice.pub --name Alice", "")],
    "repro keys untrust": [("repro keys untrust Alice", "")],
    "repro publish": [
        ("repro publish study.capsule.tgz --sandbox", "a draft on sandbox.zenodo.org"),
        ("repro publish study.capsule.tgz --publish", "publish on zenodo.org: a DOI"),
        (
            "repro publish --attestation study.attestation.json --publish",
            "a replay attestation, linked to its capsule",
        ),
    ],
    "repro fetch": [
        ("repro fetch 10.5281/zenodo.1234567", "download and verify"),
        ("repro fetch 10.5281/zenodo.1234567 -o capsules --attestations", ""),
    ],
    "repro verify-attestation": [
        ("repro verify-attestation study.attestation.json", ""),
        ("repro verify-attestation *.attestation.json --capsule study.capsule.tgz", ""),
    ],
    "repro history": [
        ("repro history", "every replay on this machine"),
        ("repro history study.capsule.tgz --json", "one capsule's"),
    ],
    "repro status": [
        ("repro status", "the detached replays not collected yet"),
        ("repro status r20261201-3fa9c2", "one replay's points"),
    ],
    "repro collect": [
        ("repro collect r20261201-3fa9c2 --report report.html", "wait, gather, compare"),
    ],
    "repro cat": [
        ("repro cat study.capsule.tgz data/project/repro.toml", ""),
        ("repro cat study.capsule.tgz data/project/results/metrics.json | jq .", ""),
    ],
    "repro extract": [
        ("repro extract study.capsule.tgz -o study", "every file"),
        ("repro extract study.capsule.tgz data/project/analyse.py -o here", "one file"),
    ],
    "repro shell": [
        ("repro shell study.capsule.tgz", "a shell in the locked environment"),
        ("repro shell study.capsule.tgz --target docker", "in its image"),
    ],
    "repro exec": [
        ("repro exec study.capsule.tgz -- python -c 'import numpy; print(numpy.__version__)'", ""),
    ],
    "repro restamp": [
        ("repro restamp study.capsule.tgz --title 'A better title' -o fixed.capsule.tgz", ""),
        ("repro restamp study.capsule.tgz --key lab --in-place", "sign again with another key"),
    ],
    "repro cache": [
        ("repro cache list", "what the caches hold, with sizes"),
        ("repro cache prune --older-than 30d", "remove what was not used for 30 days"),
    ],
    "repro cache list": [("repro cache list --json", "")],
    "repro cache prune": [
        ("repro cache prune --older-than 30d --dry-run", "what it would remove"),
        ("repro cache prune --keep-last 3", "the 3 most recent environments of each kind"),
    ],
}


def epilog(command: str) -> str | None:
    """The Examples section of `command`'s help (click keeps "\\b" paragraphs as written)."""
    examples = EXAMPLES.get(command)
    if not examples:
        return None
    lines: list[str] = []
    for cmd, note in examples:
        lines += [f"  {cmd}", *([f"      {note}"] if note else [])]
    return "Examples:\n\n\b\n" + "\n".join(lines)
