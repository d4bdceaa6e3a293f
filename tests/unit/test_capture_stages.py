"""Capture's pure stages on their own: the plan (flags over repro.toml, exclusions, epoch),
the snapshot (listing, sizes, digests) and assembly (file roles, generated entries, jobs)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from repro.capsule.manifest import ExpectedOutput, Package, RunRecord
from repro.capsule.writer import Source
from repro.capture.assemble import (
    Contents,
    add_results,
    file_role,
    job_specs,
    project_contents,
    recorded_variables,
)
from repro.capture.environment import LockedEnvironment, with_kernel
from repro.capture.options import CaptureOptions
from repro.capture.plan import effective_config, exclusions, plan_capture
from repro.capture.results import Results
from repro.capture.snapshot import check_sizes, take_snapshot
from repro.config import load_config
from repro.config.models import DataSpec, Run
from repro.env.lock import Lock
from repro.errors import (
    ConfigError,
    FileTooLargeError,
    ProjectNotFoundError,
    ResolverError,
    UsageError,
)

CONFIG = """
[environment]
requirements = "requirements.txt"
python = "3.11"
variables = ["OMP_NUM_THREADS"]
[[data]]
path = "data/"
[[data]]
path = "remote/table.csv"
url = "https://example.org/table.csv"
sha256 = "%s"
[capture]
allow_secrets = ["fixtures/key.pem"]
[[runs]]
name = "sweep"
command = "python run.py {seed}"
outputs = ["results/{seed}/m.json", "results/{seed}/fig.png"]
[runs.sweep]
seed = [0, 1]
""" % ("0" * 64)


def project(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    (root / "data").mkdir(parents=True)
    (root / "data" / "in.csv").write_text("1,2\n")
    (root / "run.py").write_text("print('hi')\n")
    (root / "requirements.txt").write_text("")
    (root / "repro.toml").write_text(CONFIG)
    return root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# plan


def test_flags_replace_the_configs_settings_and_runs_and_add_data(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path))
    flag_run = Run(name="flag", command="python other.py", outputs=["out.txt"])
    opts = CaptureOptions(
        project=tmp_path,
        output=tmp_path / "c.tgz",
        runs=[flag_run],
        data=["extra"],
        requirements="requirements.in",
        python="3.12",
        resolver="pip-tools",
        base_image="python:3.12-slim",
    )
    effective = effective_config(config, opts)
    env = effective.environment
    assert (env.requirements, env.python, env.resolver) == ("requirements.in", "3.12", "pip-tools")
    assert env.base_image == "python:3.12-slim"
    assert env.variables == ["OMP_NUM_THREADS"]  # what no flag says stays
    assert effective.runs == [flag_run]
    assert [d.path for d in effective.data] == ["data/", "remote/table.csv", "extra"]


def test_without_flags_the_config_is_unchanged(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path))
    opts = CaptureOptions(project=tmp_path, output=tmp_path / "c.tgz")
    assert effective_config(config, opts) == config
    # An empty list of runs given as flags still replaces the config's runs.
    assert effective_config(config, CaptureOptions(tmp_path, tmp_path, runs=[])).runs == []


def test_exclusions_are_every_points_outputs_remote_data_and_the_capsule(tmp_path: Path) -> None:
    root = project(tmp_path)
    config, _ = load_config(root)
    inside = exclusions(config, root, root / "out" / "study.tgz")
    assert inside == {
        "results/0/m.json",
        "results/0/fig.png",
        "results/1/m.json",
        "results/1/fig.png",
        "remote/table.csv",
        "out/study.tgz",
    }
    outside = exclusions(config, root, tmp_path / "study.tgz")
    assert outside == inside - {"out/study.tgz"}


def test_plan_reads_the_config_splits_data_and_merges_allowed_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.chdir(root)
    opts = CaptureOptions(project=root, output=Path("study.tgz"), allow_secrets=["cred.json"])
    plan = plan_capture(opts)
    assert plan.project == root.resolve()
    assert plan.config_source == "repro.toml"
    assert plan.output == root / "study.tgz"
    assert "study.tgz" in plan.exclude
    assert (plan.epoch, plan.reproducible) == (1700000000, True)
    assert plan.local_data == ("data",)
    assert plan.remote_data == (
        DataSpec(path="remote/table.csv", url="https://example.org/table.csv", sha256="0" * 64),
    )
    assert plan.allowed_secrets == {"fixtures/key.pem", "cred.json"}
    assert plan.environment.python == "3.11"


def test_plan_epoch_is_now_without_source_date_epoch(tmp_path: Path) -> None:
    plan = plan_capture(CaptureOptions(project=project(tmp_path), output=tmp_path / "c.tgz"))
    assert not plan.reproducible
    assert plan.epoch > 1700000000


def test_plan_refuses_a_bad_epoch_and_a_missing_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProjectNotFoundError, match="project directory not found"):
        plan_capture(CaptureOptions(project=tmp_path / "nope", output=tmp_path / "c.tgz"))
    (tmp_path / "file").write_text("")
    with pytest.raises(ProjectNotFoundError, match="not a directory"):
        plan_capture(CaptureOptions(project=tmp_path / "file", output=tmp_path / "c.tgz"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH is not an integer: 'yesterday'"):
        plan_capture(CaptureOptions(project=project(tmp_path), output=tmp_path / "c.tgz"))


# snapshot


def test_snapshot_lists_hashes_and_leaves_out_the_outputs(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "results" / "0").mkdir(parents=True)
    (root / "results" / "0" / "m.json").write_text("{}")
    (root / "link.py").symlink_to("run.py")
    opts = CaptureOptions(project=root, output=root / "c.tgz", use_hash_cache=False)
    messages: list[str] = []
    snapshot = take_snapshot(plan_capture(opts), messages.append)
    rels = [f.rel for f in snapshot.listing.files]
    assert "results/0/m.json" not in rels
    assert {"data/in.csv", "run.py", "link.py", "repro.toml"} <= set(rels)
    assert "link.py" not in [f.rel for f in snapshot.regular]
    assert snapshot.hashed_bytes == sum(f.path.stat().st_size for f in snapshot.regular)
    digests = snapshot.capsule_digests()
    assert digests["data/project/run.py"] == sha(b"print('hi')\n")
    assert digests["data/project/link.py"] == sha(b"run.py")  # a symlink: its target
    assert list(snapshot.timings) == ["list", "hash", "scan"]
    assert messages[0] == "listing project files"


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    opts = CaptureOptions(project=root, output=root / "c.tgz")
    files = list(take_snapshot(plan_capture(opts), lambda _m: None).regular)
    with pytest.raises(FileTooLargeError, match="per-file limit"):
        check_sizes(files, 4)
    check_sizes(files, 2**20)


# environment


def test_freeze_with_notebooks_needs_the_kernel_packages() -> None:
    lock = Lock("ipykernel==6\n", "freeze", None, [Package(name="ipykernel", version="6")])
    locked = LockedEnvironment(lock, [], ["a note"])
    with pytest.raises(ResolverError, match="lacks nbclient"):
        with_kernel(locked, "3.11", "uv", freeze=True)
    both = Lock("", "freeze", None, [*lock.packages, Package(name="nbclient", version="0.10")])
    complete = LockedEnvironment(both, [], ["a note"])
    assert with_kernel(complete, "3.11", "uv", freeze=True) is complete


# assemble


@pytest.mark.parametrize(
    ("rel", "role"),
    [
        ("data", "data"),
        ("data/in.csv", "data"),
        ("data/deep/x.bin", "data"),
        ("database.py", "code"),
        ("table.csv", "data"),
        ("analysis.ipynb", "notebook"),
        ("src/model.py", "code"),
    ],
)
def test_file_roles(rel: str, role: str) -> None:
    assert file_role(rel, ("data", "table.csv")) == role


def test_project_entries_carry_mode_role_and_links(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "run.py").chmod(0o755)
    (root / "link.py").symlink_to("run.py")
    opts = CaptureOptions(project=root, output=root / "c.tgz", use_hash_cache=False)
    plan = plan_capture(opts)
    snapshot = take_snapshot(plan, lambda _m: None)
    contents = project_contents(snapshot, plan.local_data)
    entries = {e.path: e for e in contents.files}
    run, link, data = (
        entries["data/project/run.py"],
        entries["data/project/link.py"],
        entries["data/project/data/in.csv"],
    )
    assert (run.mode, run.role, run.size, run.link) == (0o755, "code", 12, None)
    assert (link.mode, link.role, link.size, link.link) == (0o777, "code", 0, "run.py")
    assert link.sha256 == sha(b"run.py")
    assert (data.mode, data.role) == (0o644, "data")
    assert "data/project/link.py" not in contents.sources  # a link has no content to copy
    source = contents.sources["data/project/run.py"]
    assert isinstance(source, Source) and Path(source.path) == root / "run.py"


def test_generated_files_are_entries_with_their_content() -> None:
    contents = Contents()
    contents.add_generated("data/env/requirements.lock", b"six==1.16\n", "env")
    contents.add_generated("data/jobs/a.sbatch", b"#!/bin/sh\n", "job", mode=0o755)
    lock, job = contents.files
    assert (lock.sha256, lock.size, lock.mode, lock.role) == (sha(b"six==1.16\n"), 10, 0o644, "env")
    assert (job.mode, job.role) == (0o755, "job")
    assert contents.sources == {
        "data/env/requirements.lock": b"six==1.16\n",
        "data/jobs/a.sbatch": b"#!/bin/sh\n",
    }


def test_results_become_result_entries_read_from_where_they_were_produced(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("42\n")
    output = ExpectedOutput(
        path="out.txt", capsule_path="data/results/a/p0/out.txt", sha256=sha(b"42\n"), size=3
    )
    record = RunRecord(
        run="a", point={}, point_id="p0", command="x", executed=True, outputs=[output]
    )
    results = Results((record,), (), {"data/results/nb/a.ipynb": b"{}"}, None, (), tmp_path, {})
    contents = Contents()
    add_results(contents, results)
    assert [(e.path, e.role, e.size) for e in contents.files] == [
        ("data/results/nb/a.ipynb", "result", 2),
        ("data/results/a/p0/out.txt", "result", 3),
    ]
    source = contents.sources["data/results/a/p0/out.txt"]
    assert isinstance(source, Source) and source.path == tmp_path / "out.txt"


def test_each_run_is_a_job_with_a_script_per_scheduler(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path))
    jobs, files = job_specs(config.runs)
    (job,) = jobs
    assert job.run == "sweep"
    assert len(job.point_ids) == 2
    assert job.scripts == {
        "slurm": "data/jobs/sweep.sbatch",
        "pbs": "data/jobs/sweep.pbs",
        "sge": "data/jobs/sweep.sge",
    }
    assert set(files) == set(job.scripts.values())
    assert all(b"python run.py" in content for content in files.values())


def test_only_allowlisted_variables_are_recorded_and_never_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("LANG_UNSET_FOR_TEST", raising=False)
    assert recorded_variables(["OMP_NUM_THREADS", "LANG_UNSET_FOR_TEST"]) == {
        "OMP_NUM_THREADS": "2"
    }
    with pytest.raises(ConfigError, match="API_TOKEN looks like a secret"):
        recorded_variables(["API_TOKEN"])


def test_project_entries_built_fast_are_what_validation_builds() -> None:
    from pydantic import ValidationError

    from repro.capsule.manifest import FileEntry
    from repro.capture.assemble import lean_entry, project_entry

    for path, mode, role in [
        ("data/project/a.py", 0o644, "code"),
        ('data/project/é "q"\\.csv', 0o755, "data"),
        ("data/project/n.ipynb", 0o644, "notebook"),
    ]:
        fast = project_entry(path, "ab" * 32, 12, mode, role)  # type: ignore[arg-type]
        slow = lean_entry(FileEntry(path=path, sha256="ab" * 32, size=12, mode=mode, role=role))
        assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
        assert fast.model_dump() == slow.model_dump()
        assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
        assert fast.model_copy(update={"size": 1}).size == 1 and fast.size == 12
        with pytest.raises(ValidationError):
            fast.size = 3  # type: ignore[misc]  # frozen, like the validated one
    good = ("data/project/a", "ab" * 32, 1)
    for bad in [
        ("data/project/" + "x" * 300, "ab" * 32, 1),  # a name over NAME_MAX
        ("data/project/a", "AB" * 32, 1),
        ("data/project/a", "ab" * 32, -1),
    ]:
        assert bad != good
        with pytest.raises(ValidationError):
            project_entry(*bad, 0o644, "data")


def test_manifest_files_sort_by_code_point_as_by_utf8_bytes() -> None:
    # assemble sorts the entries by str (no encoding per file): the same order as by UTF-8
    # bytes for every valid path, across 1-, 2-, 3- and 4-byte characters and "/".
    paths = ["a", "a/b", "a-b", "é", "ÿ/x", "Ā", "中", "\uffff", "😀", "\U0010ffff", "z", "a.b"]
    assert sorted(paths) == sorted(paths, key=str.encode)
    from repro.capture.assemble import _all_sha256

    assert _all_sha256(["ab" * 32, "0" * 64]) and _all_sha256([])
    assert not _all_sha256(["ab" * 32, "AB" * 32]) and not _all_sha256(["a" * 63 + "g"])
    assert not _all_sha256(["ab" * 31 + "a", "b"])  # two short ones: not 64 each


def test_gc_paused_restores_the_collector_as_it_was() -> None:
    import gc

    from repro.capture.pipeline import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner one leaves it off for the outer
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError
    assert gc.isenabled()
