"""What people read: the rich lines and tables each command prints, progress bars, JSON out.

Results go to stdout (`out`), progress, warnings and errors to stderr (`err`), so --json
keeps stdout machine-readable. The command modules in repro/cli/ call these after the core
returns; nothing here decides an outcome.
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from repro.progress import Meter
from repro.report.text import json_text, printable
from repro.report.verbosity import verbosity
from repro.resource_usage import detail as usage_detail
from repro.resource_usage import side_by_side, sweep_summary
from repro.sign import SignatureStatus, fingerprint

if TYPE_CHECKING:
    from repro.attestation.check import CapsuleSummary, CheckedAttestation
    from repro.capsule.manifest import Manifest, NotebookRecord
    from repro.capture.pipeline import CaptureResult
    from repro.config.models import Resources
    from repro.history import History
    from repro.init import InitResult
    from repro.init.candidates import Candidate
    from repro.publish.attestations import AttestationReceipt
    from repro.publish.fetch import FetchResult
    from repro.publish.flow import PublishResult
    from repro.report.detached import DetachedReplay, ReplayList, ReplayStatus
    from repro.report.diff import CapsuleDiff
    from repro.report.replay import PointReplay, ReplayReport
    from repro.resource_usage import ResourceUsage
    from repro.sign import KeyInfo
    from repro.verify import VerifyReport

# No automatic highlighting: rich's guesses colour parts of words (its IPv6 rule took
# "A256:0a1b" out of "SHA256:0a1b 2c3d ..."); what is coloured here is coloured on purpose.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
if not out.is_terminal:
    out.width = max(out.width, 160)  # piped into a file or a log: do not fold tables at 80

VERDICT_STYLE = {
    "identical": "green",
    "within_tolerance": "green",
    "different": "bold red",
    "missing": "bold red",
    "not_verified": "yellow",
    "failed": "bold red",
}


def _m(text: object) -> str:
    """Capsule (or any outside) text inside a markup string: one line, controls made
    visible, markup escaped."""
    return escape(printable(str(text)))


def _t(text: object, style: str = "", *, lines: bool = False) -> Text:
    """Capsule (or any outside) text as a rich Text: never markup, controls made visible."""
    return Text(printable(str(text), lines=lines), style=style)


def emit_json(model: BaseModel) -> None:
    """A command's --json result on stdout: the model's JSON, keys sorted, one document.
    Characters a terminal acts on (ESC is escaped by json itself; C1, bidi controls, lone
    surrogates of undecodable names) are written as JSON escapes: exact and valid UTF-8."""
    import json

    data = model.model_dump(mode="json")
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write(json_text(text) + "\n")


def fitted(console: Console, text: str, first: str, rest: str) -> list[str]:
    """`text` (made printable) as the lines it takes on `console`: on a terminal wrapped
    before its last column, cut only at spaces (a fingerprint stays whole), continuation
    lines indented by `rest`; one line off a terminal (a log is read by grep)."""
    if not console.is_terminal:
        return [first + printable(text)]
    from repro.report.verdict_lines import wrap

    return wrap(text, console.width - 1, rest, first=first)


def say(message: str) -> None:
    """A progress line on stderr (the observer the core reports to); none with -q."""
    if verbosity().quiet:
        return
    for line in fitted(err, message, "· ", "  "):
        err.print(Text(line, style="dim"), highlight=False)


def warn(warnings: list[str]) -> None:
    for warning in warnings:
        lines = fitted(err, warning, "warning: ", "  ")
        err.print(Text("warning:", style="bold yellow") + Text(lines[0][8:]), highlight=False)
        for line in lines[1:]:
            err.print(Text(line), highlight=False)


def error(message: str, hint: str, details: Sequence[str] = ()) -> None:
    """An expected failure: one line, its details (one block each) and its hint last."""
    err.print(f"[bold red]error:[/] {_m(message)}", highlight=False)
    for block in details:
        err.print(_t(textwrap.indent(block, "  "), lines=True), highlight=False)
    if hint:
        err.print(f"[yellow]hint:[/] {_m(hint)}", highlight=False)


def interrupted(how: str = "interrupted") -> None:
    err.print(f"[bold red]{how}[/]: stopped what was running; nothing was written")


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class TransferBar:
    """A progress bar on stderr for an upload or download (none with --json or off a tty);
    entering it gives the (bytes done, total) callback the core reports to."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and err.is_terminal and not verbosity().quiet
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, int | None], None] | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
            transient=True,
        )
        self.bar = bar.__enter__()
        task = bar.add_task(_m(self.label), total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


# --- init --------------------------------------------------------------------------------


def render_init(result: InitResult) -> None:
    target, found = result.config, result.detected
    out.print(f"wrote {_m(str(target))}")
    for line in found.environment_lines(target.parent):
        out.print(f"  {_m(line)}")
    if found.subfolder_file:
        out.print(f"  requirements: {_m(found.subfolder_file)} (found in a subfolder)")
    if found.guess and found.guess.packages and not found.requirements:
        out.print(
            "  packages: [yellow]guessed[/] from the imports (check them): "
            + _m(", ".join(found.guess.packages))
        )
    if found.conda_only:
        out.print(
            "  conda-only packages: [yellow]left out[/] (no PyPI equivalent; check): "
            + _m(", ".join(found.conda_only))
        )
    for data in found.data_dirs:
        out.print(f"  data: {_m(data)}/")
    if found.notebooks:
        out.print(f"  notebooks: {_m(', '.join(found.notebooks))}")
    if not result.runs:
        if found.candidates:
            out.print(
                "  run candidates found (none chosen; pass --yes for the first, or --run CMD):"
            )
            render_candidates(found.candidates, console=out)
        else:
            out.print("  no run candidate found (no Makefile, run.py, run.sh, README command)")
    tried = {t.name: t for t in result.trial.runs} if result.trial else {}
    for run in result.runs:
        out.print(f"  run {_m(run.name)}: {_m(run.command)}  [dim]({_m(run.source)})[/]")
        t = tried.get(run.name)
        if t is not None:
            state = "[green]ok[/]" if t.ok else f"[red]exit {t.exit_code}[/]"
            out.print(
                f"    tried: {state} in {t.duration_s:.1f} s, wrote {len(run.outputs)} file(s)"
            )
            for path in run.outputs[:20]:
                out.print(f"      {_m(path)}")
            if len(run.outputs) > 20:
                out.print(f"      ... and {len(run.outputs) - 20} more (all in repro.toml)")
            for path in t.removed:
                out.print(_t(f"    removed {path}", style="yellow"))
    if result.trial:
        out.print(
            f"  trial: {result.trial.packages} packages, Python {result.trial.python}, "
            f"{result.trial.seconds:.1f} s (the environment capture builds, now cached)"
        )
    if result.questions:
        out.print("[yellow]to answer before publishing[/] (QUESTION lines in repro.toml):")
        for question in result.questions:
            out.print(f"  - {_m(question)}")
    if result.runs and all(r.outputs for r in result.runs):
        out.print("next: repro capture -o study.capsule.tgz")
    else:
        out.print(_m("Edit its [[runs]] section, then: repro capture -o study.capsule.tgz"))


def render_candidates(candidates: list[Candidate], console: Console | None = None) -> None:
    """The run candidates, numbered from 1, best first."""
    for i, cand in enumerate(candidates, 1):
        (console or err).print(
            f"  {i:>2}. {_m(cand.command)}  [dim]({_m(cand.source)})[/]", highlight=False
        )


def render_trial_failure(message: str, details: str) -> None:
    """A run that failed in `repro init --try`: what it said last (the message is left out
    when the error line that follows says it)."""
    if message:
        err.print(f"[red]trial failed[/]: {_m(message)}", highlight=False)
    if details:
        err.print(_t(details.rstrip(), lines=True))


def ask(prompt: str) -> str:
    """One answer typed on the terminal (the prompt on stderr: stdout stays the result)."""
    return err.input(f"{_m(prompt)} ")


# --- capture -----------------------------------------------------------------------------


def render_capture(result: CaptureResult) -> None:
    m = result.manifest
    outputs = sum(len(r.outputs) for r in m.results)
    out.print(f"[bold green]captured[/] {_m(result.capsule.path)} ({size(result.capsule.size)})")
    out.print(f"  id        {result.capsule.capsule_id}")
    out.print(f"  files     {len(m.files)} ({size(m.payload_size)} payload)")
    out.print(
        f"  lock      {len(m.environment.packages)} packages ({m.environment.lock_source}), "
        f"Python {_m(m.environment.python_version)}"
    )
    out.print(f"  results   {outputs} expected outputs from {len(m.results)} run point(s)")
    declaration = m.environment.declaration
    if declaration is not None:
        if declaration.folder:
            out.print(f"  config    read from {_m(declaration.folder)}/ (root files ignored)")
        out.print(f"  env from  {_m(', '.join(declaration.used) or 'no environment file')}")
        for item in declaration.ignored:
            out.print(f"  ignored   {_m(item)}")
        for package in m.environment.local_packages:
            out.print(
                f"  local     {_m(package.name)} {_m(package.version)} "
                f"({package.kind} {_m(package.origin)}), installed from the capsule"
            )
    for nb in m.notebook_results:
        out.print(_t("  notebook  ") + _notebook_line(nb))
    if result.signed_by:
        out.print(f"  signed    {fingerprint(result.signed_by)}")
    else:
        out.print("  signed    [yellow]no[/] (create a key with: repro keys generate)")
    for path in m.excluded:
        out.print(_t("  excluded  ", style="yellow") + _t(path))
    for note in m.notes:
        out.print(_t("  note      ", style="yellow") + _t(note))


def _notebook_line(nb: NotebookRecord) -> Text:
    how = "executed" if nb.executed else "saved outputs (--no-run)"
    version = f" {nb.kernel.language_version}" if nb.kernel.language_version else ""
    return _t(
        f"{nb.path}: {nb.code_cells} code cell(s), {how}, kernel {nb.kernel.name} "
        f"({nb.kernel.language}{version})"
    )


# --- verify / inspect / fetch ------------------------------------------------------------


def render_verify(report: VerifyReport) -> None:
    c = report.capsule
    out.print(
        f"[bold green]verified[/] {_m(c.path)}: {len(c.manifest.files)} files, "
        f"{size(c.manifest.payload_size)}, every checksum matches"
    )
    out.print(f"  id         {c.capsule_id}")
    render_signature(report.signature)


def render_signature(status: SignatureStatus) -> None:
    colour = {"trusted": "green", "unknown": "yellow", "unsigned": "yellow"}[status.state]
    out.print(f"  signature  [{colour}]{_m(status.describe())}[/]", highlight=False)
    if status.state == "unknown":
        out.print("             (anyone can sign; trust the author's key to know it is theirs)")


def _line(text: str) -> None:
    """One line of capsule text on stdout: no markup, no highlighting, controls made visible."""
    out.print(printable(text), markup=False, highlight=False)


def render_inspect(report: VerifyReport) -> None:
    """Everything a reader should see before replaying, all of it capsule text: shown
    through `printable`, never as markup."""
    c = report.capsule
    m = c.manifest
    md = m.metadata
    out.print(_t(md.title, style="bold"), highlight=False)
    for a in md.authors:
        extra = ", ".join(x for x in (a.affiliation, f"ORCID {a.orcid}" if a.orcid else None) if x)
        _line(f"  {a.name}" + (f" ({extra})" if extra else ""))
    if md.license:
        _line(
            f"  license {md.license}"
            + (f"; keywords: {', '.join(md.keywords)}" if md.keywords else "")
        )
    _line(
        f"capsule   {c.capsule_id}  ({size(c.archive_size)}, created {m.created}, "
        f"repro {m.repro_version})"
    )
    s = m.source
    if s.kind == "git":
        _line(
            f"source    git {s.remote or '(no remote)'} @ {(s.commit or 'no commit')[:12]}"
            f" on {s.branch or 'detached'}" + (" (dirty)" if s.dirty else "")
        )
    else:
        _line("source    a directory (not a git work tree)")
    e = m.environment
    _line(
        f"env       Python {e.python_version}, {len(e.packages)} packages locked by {e.lock_source}"
    )
    _line(f"image     {e.base_image}")
    if e.apt_packages:
        _line(f"apt       {' '.join(e.apt_packages)}")
    p = m.platform
    _line(
        f"platform  {p.distribution or p.system} {p.machine}, {p.python_implementation} "
        f"{p.python_version}, {p.cpu_count} x {p.cpu_model}"
    )
    roles: dict[str, tuple[int, int]] = {}
    for f in m.files:
        count, total = roles.get(f.role, (0, 0))
        roles[f.role] = (count + 1, total + f.size)
    _line(
        "files     " + ", ".join(f"{r}: {n} ({size(sz)})" for r, (n, sz) in sorted(roles.items()))
    )
    for r in m.remote_data:
        _line(f"remote    {r.path} <- {r.url} ({size(r.size)}, sha256 {r.sha256[:12]})")
    for run in m.runs:
        _line(f"run       {run.name}: {run.command}")
        _line(
            f"          {_resources(run.resources)}, timeout {run.timeout:g} s"
            + (", network" if run.network else "")
        )
    for job in m.jobs:
        _line(f"job       {job.run}: {_resources(job.resources)}")
    out.print(_expected_results(m))
    used = _used(m)
    if used is not None:
        out.print(used)
    for nb in m.notebook_results:
        out.print(_t("notebook  ") + _notebook_line(nb), highlight=False)
        if nb.usage is not None:
            out.print(_t(f"          used: {usage_detail(nb.usage)}"), highlight=False)
    for note in m.notes:
        out.print(_t("note ", style="yellow") + _t(note, lines=True), highlight=False)
    render_signature(report.signature)


def _resources(res: Resources) -> str:
    """Every resource a run asks a target or a scheduler for, as the scripts will say it."""
    parts = [f"cpus {res.cpus}"]
    parts += [f"memory {res.memory}"] if res.memory else []
    parts += [f"gpus {res.gpus}"] if res.gpus else []
    parts += [f"walltime {res.walltime}"] if res.walltime else []
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(res, key)
        if value:
            parts.append(f"{key} {value}")
    parts += [f"array limit {res.array_limit}"] if res.array_limit else []
    return ", ".join(parts)


def _used(m: Manifest) -> Table | None:
    """What each point used at capture; None when none was recorded (SOURCE_DATE_EPOCH)."""
    recorded = [r for r in m.results if r.usage is not None]
    if not recorded:
        return None
    table = Table(title="used at capture (docs/resources.md)", show_lines=False)
    for col in ("run", "point", "used"):
        table.add_column(col, overflow="fold")
    for rec in recorded:
        if rec.usage is not None:
            table.add_row(_t(rec.run), _t(rec.point_id), _t(usage_detail(rec.usage)))
    return table


def _expected_results(m: Manifest) -> Table:
    table = Table(title="expected results", show_lines=False)
    for col in ("run", "point", "output", "size", "sha256", "rule"):
        table.add_column(col)
    for rec in m.results:
        if not rec.outputs:
            table.add_row(_t(rec.run), _t(rec.point_id), "(none recorded)", "", "", "")
        for o in rec.outputs:
            rule = o.rule.method + (f" rtol={o.rule.rtol:g}" if o.rule.rtol is not None else "")
            table.add_row(
                _t(rec.run), _t(rec.point_id), _t(o.path), size(o.size), o.sha256[:12], rule
            )
    return table


def render_fetch(result: FetchResult, report: VerifyReport) -> None:
    out.print(
        f"[bold green]fetched[/] {_m(str(result.path))} ({size(result.size)}) from "
        f"{_m(str(result.doi))}: Zenodo's md5 matches, every checksum verified",
        highlight=False,
    )
    if result.concept_doi:
        out.print(f"{_m(result.concept_doi)} is a concept DOI: fetched its latest version")
    render_signature(report.signature)


# --- replay ------------------------------------------------------------------------------


def _styled(line: list[tuple[str, str]]) -> Text:
    text = Text()
    for piece, style in line:
        text.append(piece, style=style)
    return text


def _unicode(console: Console) -> bool:
    return console.encoding.lower().replace("-", "").startswith("utf")


def render_replay(result: ReplayReport, report: Path | None) -> None:
    """The verdicts, one line per output, at the terminal's width (see verdict_lines); a
    notebook's error (its traceback's tail) on stderr."""
    from repro.report.verdict_lines import fold_output, replay_lines

    # Off a terminal (a log, a pipe) nothing is wrapped: one line per output, for grep.
    width = out.width if out.is_terminal else 1 << 16
    for line in replay_lines(result, width, unicode=_unicode(out)):
        out.print(_styled(line), highlight=False, markup=False)
    for nb in result.notebooks:
        for raw in f"{nb.path}: {nb.error}".splitlines() if nb.error else []:
            rows = fold_output(raw, err.width - 1, "", "    ") if err.is_terminal else [raw]
            for row in rows:
                err.print(_t(row, style="red"), highlight=False)
    for usage_line in _resource_lines(result):
        for row in fitted(out, usage_line, "  ", "      "):
            out.print(_t(row, style="dim"), highlight=False)
    out.print(_replay_verdict(result), highlight=False)
    for label, path in (("report", report), ("attestation", result.attestation)):
        if path is not None:
            out.print(_t(f"{label}: {path}"), highlight=False)
    if result.workdir:
        out.print(_t(f"working directory kept: {result.workdir}"), highlight=False)


def _resource_lines(result: ReplayReport) -> list[str]:
    """Captured beside replayed, one line per point and notebook, with what ended a run that
    did not exit 0; none when nothing was measured (docs/resources.md). A run of more than
    FOLD_POINTS points: one line for the run (medians and largest), and a line for each
    point that did not exit 0."""
    from repro.report.verdict_lines import FOLD_POINTS

    by_run: dict[str, list[PointReplay]] = {}
    for p in result.points:
        by_run.setdefault(p.run, []).append(p)
    rows: list[tuple[str, str, ResourceUsage | None, ResourceUsage | None]] = []
    lines = []
    for run, points in by_run.items():
        if len(points) > FOLD_POINTS:
            lines.append(
                f"resources {run} ({len(points)} points): "
                + sweep_summary([p.captured_usage for p in points], [p.usage for p in points])
            )
            points = [p for p in points if p.usage is not None and p.usage.ending.exit_code != 0]
        rows += [(p.run, p.point_id, p.captured_usage, p.usage) for p in points]
    rows += [(nb.path, "", nb.captured_usage, nb.usage) for nb in result.notebooks]
    for run, point, captured, replayed in rows:
        if captured is None and replayed is None:
            continue
        label = f"{run} [{point}]" if point and point != "_" else run
        ended = ""
        if replayed is not None and replayed.ending.exit_code != 0:
            ended = f"; {replayed.ending.words}"
        lines.append(f"resources {label}: {side_by_side(captured, replayed)}{ended}")
    return lines


def render_replay_failures(result: ReplayReport) -> None:
    """With --json: the failed points' stderr tails on stderr (the data is in the JSON)."""
    from repro.report.verdict_lines import stderr_tail

    for p in result.points:
        if p.status != "ok":
            label = p.run if not p.point else f"{p.run} [{p.point_id}]"
            err.print(_t(f"run {label} {p.status.replace('_', ' ')} (exit {p.exit_code})"))
            for line in stderr_tail(p.stderr_tail, err.width if err.is_terminal else 1 << 16):
                err.print(_styled(line), highlight=False, markup=False)


def _replay_verdict(result: ReplayReport) -> str:
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(result.counts.items()))
    if result.notebooks:
        tally: dict[str, int] = {}
        for nb in result.notebooks:
            tally[nb.verdict] = tally.get(nb.verdict, 0) + 1
        notebooks = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(tally.items()))
        counts = f"{counts}; notebooks: {notebooks}" if counts else f"notebooks: {notebooks}"
    if result.reproduced:
        return f"[bold green]reproduced[/] ({counts}) in {result.duration_s:.1f} s"
    if not result.verified:
        counts = f"nothing verified; {counts}" if counts else "nothing verified"
    return f"[bold red]not reproduced[/] ({counts}) in {result.duration_s:.1f} s"


# --- detached replays (status, collect) ---------------------------------------------------

STATE_STYLE = {"queued": "dim", "running": "cyan", "done": "green", "failed": "bold red"}


def render_detached(result: DetachedReplay) -> None:
    where = f" on {result.host}" if result.host else ""
    out.print(
        _t(f"submitted replay {result.id}{where}: {result.points} point(s), Slurm job(s) ")
        + _t(", ".join(result.jobs)),
        highlight=False,
    )
    out.print(_t(f"  follow it:  repro status {result.id}"), highlight=False)
    out.print(_t(f"  gather it:  repro collect {result.id}"), highlight=False)


def render_status(result: ReplayStatus) -> None:
    from repro.report.detached import tally

    where = f" on {result.host}" if result.host else ""
    table = Table(title=_t(f"replay {result.id}{where}: {result.state}"))
    for col in ("run", "point", "job", "state", "exit", "detail"):
        table.add_column(col, overflow="fold")
    for t in result.tasks:
        table.add_row(
            _t(t.run),
            _t(t.point_id),
            _t(f"{t.job}_{t.index}"),
            _t(t.state, style=STATE_STYLE[t.state]),
            "" if t.exit_code is None else str(t.exit_code),
            _t(t.note),
        )
    out.print(table)
    counts = tally(result.counts)
    out.print(_t(f"{counts}; gather with: repro collect {result.id}"), highlight=False)


def render_replay_list(result: ReplayList) -> None:
    if not result.replays:
        out.print("no detached replays waiting to be collected")
        return
    table = Table(title="detached replays")
    for col in ("id", "host", "capsule", "points", "jobs"):
        table.add_column(col, overflow="fold")
    for r in result.replays:
        table.add_row(
            _t(r.id), _t(r.host or "(here)"), _t(r.capsule), str(r.points), _t(", ".join(r.jobs))
        )
    out.print(table)


# --- diff --------------------------------------------------------------------------------


def render_diff(result: CapsuleDiff, a: Path, b: Path) -> None:
    if not result.entries:
        out.print("[green]no differences[/]" + (" (same capsule)" if result.identical else ""))
        return
    table = Table(title=_t(f"{a.name} -> {b.name}"))
    for col in ("kind", "name", "change", "before", "after", "detail"):
        table.add_column(col, overflow="fold")
    for e in result.entries:
        cells = (e.kind, e.name, e.change, e.before, e.after, e.detail)
        table.add_row(*(_t(v or "") for v in cells))
    out.print(table)


# --- keys --------------------------------------------------------------------------------


def render_key_generated(info: KeyInfo) -> None:
    out.print(f"created key [bold]{_m(info.name)}[/] {fingerprint(info.keyid)}")
    out.print(f"  private  {_m(info.path)} (mode 0600{', encrypted' if info.encrypted else ''})")
    out.print(f"  public   {_m(info.path.with_suffix('.pub'))}  <- share this one")


def render_keys(own: list[KeyInfo], trusted: dict[str, dict[str, str]]) -> None:
    out.print("[bold]signing keys[/]" + ("" if own else "  (none: repro keys generate)"))
    for k in own:
        out.print(
            f"  {_m(f'{k.name:<16}')} {fingerprint(k.keyid)}"
            + ("  (encrypted)" if k.encrypted else "")
        )
    out.print("[bold]trusted keys[/]" + ("" if trusted else "  (none: repro keys trust KEY.pub)"))
    for keyid, entry in sorted(trusted.items(), key=lambda kv: kv[1].get("name", "")):
        label = entry.get("name", "?")
        out.print(f"  {_m(f'{label:<16}')} {fingerprint(keyid)}")


def render_trusted(keyid: str, label: str) -> None:
    out.print(f"trusted [bold]{_m(label)}[/] {fingerprint(keyid)}")


def render_untrusted(gone: list[str]) -> None:
    for keyid in gone:
        out.print(f"no longer trusted: {fingerprint(keyid)}")


# --- publish -----------------------------------------------------------------------------


def render_publish(result: PublishResult, publish_again: str) -> None:
    """`publish_again`: the command that publishes a draft (shown when one was made)."""
    r = result.receipt
    if r.state == "draft":
        out.print(
            printable(
                f"draft ready: {r.draft_url or r.record_url} (DOI {r.doi} reserved); "
                f"publish it with: {publish_again}"
            ),
            highlight=False,
            markup=False,
        )
    else:
        done = "already published" if result.already_done else "published"
        out.print(
            printable(f"{done} {r.doi}: {r.record_url} ({r.capsule})"),
            highlight=False,
            markup=False,
        )


# --- attestations and history ------------------------------------------------------------


def render_fetched_attestations(result: FetchResult) -> None:
    from repro.attestation.check import summarise

    if not result.attestations:
        out.print("no replay attestations are linked to this record")
        return
    for f in result.attestations:
        if f.checked is not None:
            out.print(
                Text("  attestation ", style="dim") + Text(f"{f.path}: {f.checked.describe()}"),
                highlight=False,
            )
        else:
            err.print(
                _t(f"  rejected record {f.record_id} {f.file_name}: {f.problem}", style="red"),
                highlight=False,
            )
    good = [f.checked for f in result.attestations if f.checked is not None]
    for s in summarise(good):
        out.print(f"[bold]{_m(s.sentence())}[/]", highlight=False)


def render_attestations(
    checked: Sequence[CheckedAttestation], summaries: Sequence[CapsuleSummary], badge: Path | None
) -> None:
    for att in checked:
        style = "green" if att.statement.reproduced else "bold red"
        trust = "" if att.trust == "trusted" else " [yellow](key not trusted)[/]"
        out.print(
            f"[{style}]{'ok' if att.statement.reproduced else 'NOT REPRODUCED'}[/] "
            f"{_m(att.source)}: {_m(att.describe())}{trust}",
            highlight=False,
        )
    for s in summaries:
        label = s.title or s.capsule_id[:12]
        out.print(f"[bold]{_m(label)}[/]: {_m(s.sentence())}", highlight=False)
    if badge is not None:
        out.print(_t(f"badge: {badge}"), highlight=False)


def render_history(history: History) -> None:
    if not history.entries:
        out.print(_t(f"no replays recorded (ledger: {history.path})"))
        return
    table = Table(title=_t(f"replay history ({history.path})"))
    for col in ("time", "capsule", "doi", "target", "host", "verdict", "attestation"):
        table.add_column(col, overflow="fold")
    for e in history.entries:
        table.add_row(
            _t(e.time),
            _t(f"{e.title or '-'} ({e.capsule_id[:12]})"),
            _t(e.doi or ""),
            _t(e.target),
            _t(e.host),
            Text(
                e.verdict.replace("_", " "),
                style="green" if e.verdict == "reproduced" else "bold red",
            ),
            _t(e.attestation or ""),
        )
    out.print(table)
    if history.skipped:
        err.print(f"[yellow]{history.skipped} unreadable line(s) of the ledger skipped[/]")


def render_attestation_published(receipt: AttestationReceipt, receipt_path: Path) -> None:
    word = "published" if receipt.state == "published" else "draft ready"
    out.print(
        f"[bold green]{word}[/] attestation {_m(receipt.doi or '')} -> linked to "
        f"{_m(receipt.capsule_doi)} (isSupplementTo): {_m(receipt.record_url)}",
        highlight=False,
    )
    out.print(_t(f"receipt: {receipt_path}"), highlight=False)


# --- working with a capsule short of replaying it (cat, extract, inspect lists, cache) ----


def render_rows(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table of outside text (file names, package names): never markup; the first column
    folds, the others stay whole, so it reads at 80 columns."""
    table = Table(title=_t(title), show_edge=False, pad_edge=False)
    for i, col in enumerate(header):
        table.add_column(col, overflow="fold", no_wrap=i > 0)
    for row in rows:
        table.add_row(*(_t(v) for v in row))
    out.print(table)


def render_lines(lines: Sequence[str]) -> None:
    """Plain lines of outside text on stdout."""
    for text in lines:
        _line(text)


def render_unified(text: str) -> None:
    """A unified diff of capsule text: + lines green, - lines red, hunks cyan; never markup."""
    for raw in text.splitlines():
        style = (
            "bold"
            if raw.startswith(("+++", "---"))
            else "green"
            if raw.startswith("+")
            else "red"
            if raw.startswith("-")
            else "cyan"
            if raw.startswith("@@")
            else ""
        )
        out.print(_t(raw, style), highlight=False)


# --- progress of long stages (repro.progress counts, this draws) ------------------------

PROGRESS_DELAY_S = 1.0
"""Nothing is drawn for a stage that ends sooner."""
PROGRESS_INTERVAL_S = 10.0
"""Seconds between two plain progress lines off a terminal (REPRO_PROGRESS_INTERVAL)."""


def enable_progress(on: bool) -> None:
    """Draw the core's stage meters on stderr from now on (off with --json, or with
    REPRO_PROGRESS=0): a rich bar on a terminal, a plain line every 10 s otherwise."""
    import os

    from repro import progress

    wanted = on and os.environ.get("REPRO_PROGRESS", "1") != "0"
    progress.set_display(_draw_stage if wanted else None)


@contextlib.contextmanager
def _draw_stage(m: Meter) -> Iterator[None]:
    stop = threading.Event()
    drawer = threading.Thread(
        target=_draw_rich if err.is_terminal else _draw_plain, args=(m, stop), daemon=True
    )
    drawer.start()
    try:
        yield
    finally:
        stop.set()
        drawer.join()


def _draw_plain(m: Meter, stop: threading.Event) -> None:
    import os

    interval = float(os.environ.get("REPRO_PROGRESS_INTERVAL", PROGRESS_INTERVAL_S))
    if stop.wait(max(PROGRESS_DELAY_S, interval)):
        return
    while True:
        err.print(_t(m.line()), highlight=False, soft_wrap=True)
        if stop.wait(interval):
            return


def _draw_rich(m: Meter, stop: threading.Event) -> None:
    if stop.wait(PROGRESS_DELAY_S):
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(m.unit),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(_m(m.label), total=m.total, rate="")
        while True:
            elapsed = max(time.monotonic() - m.started, 1e-9)
            rate = f"{m.done / elapsed:,.0f} {m.unit}/s"
            bar.update(task, completed=m.done, total=m.total, rate=rate)
            if stop.wait(0.2):
                return
