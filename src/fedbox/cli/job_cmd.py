"""``fedbox job``: submit code to a data owner and follow it (scientist); review,
decide, run and release it (owner)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.rds_options import JsonOpt, console, emit_json, open_rds
from fedbox.cli.roots import (
    ENV_ROOT,
    ROOT_HELP,
    RootOpt,
    StorageOpt,
    fail,
    identity_of,
    open_root,
)
from fedbox.cli.submit_fl_cmd import submit_fl
from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError
from fedbox.rds import JobRecord, JobState, Rds
from fedbox.rds.client import sent_jobs
from fedbox.rds.owner import Owner, fetch_mock
from fedbox.rds.package import pack, unpack
from fedbox.rds.rules import Rule, Rules
from fedbox.rds.sandbox import RunResult, run_sandboxed
from fedbox.rds.service import public_view

__all__ = ["job_app"]

job_app = typer.Typer(
    help="Jobs: code sent to a data owner, reviewed, run in a sandbox, results released.",
    no_args_is_help=True,
)

JobIdArg = Annotated[str, typer.Argument(help="The job id (or a unique prefix of it).")]
EntryOpt = Annotated[
    str, typer.Option("--entry", help="The command that runs the code, in its folder.")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Told to the submitter.")]
OptionalRootOpt = Annotated[str | None, typer.Option("--root", envvar=ENV_ROOT, help=ROOT_HELP)]


def _owner(email: str, state_dir: Path | None) -> Owner:
    return Owner(Workspace.for_email(validate_email(email), state_dir).ensure())


@contextmanager
def _asking(
    root: str, email: str, state_dir: Path | None, storage_option: list[str] | None
) -> Iterator[Rds]:
    """rds for asking owners' daemons: an error or an owner that does not answer in
    time ends the command with one line."""
    with open_rds(root, email, state_dir, storage_option) as rds:
        try:
            yield rds
        except (FedboxError, TimeoutError) as exc:
            raise fail(exc) from exc


def _print_job(job: JobRecord | dict, as_json: bool) -> None:
    view = public_view(job) if isinstance(job, JobRecord) else job
    if isinstance(job, JobRecord):
        view["submitter"] = job.submitter
        view["entry"] = job.entry
    if as_json:
        emit_json(view)
        return
    reason = f" ({view['reason']})" if view.get("reason") else ""
    console.print(f"{view['id']}  {view['status']}{reason}", markup=False)


def _print_run(result: RunResult, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        emit_json(
            {
                "outcome": result.outcome,
                "reason": result.reason,
                "isolation": result.isolation,
                "seconds": result.seconds,
                **(extra or {}),
            }
        )
    else:
        console.print(f"{result.reason} in {result.seconds:.1f} s (isolation: {result.isolation})")


# -- scientist ---------------------------------------------------------------------------


@job_app.command("submit")
def submit(
    code_dir: Annotated[Path, typer.Argument(help="The folder of code to send.")],
    to: Annotated[str, typer.Option("--to", help="The data owner.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The owner's dataset to run on.")],
    root: RootOpt,
    email: EmailOpt,
    entry: EntryOpt = "python main.py",
    name: Annotated[
        str | None, typer.Option("--name", help="Job name \\[default: folder].")
    ] = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pack CODE_DIR and send it, encrypted, to the owner; print the job id."""
    with open_rds(root, email, state_dir, storage_option) as rds:
        try:
            job = rds.submit(code_dir, to=to, dataset=dataset, entry=entry, name=name)
        except (FedboxError, ValueError) as exc:
            raise fail(exc) from exc
    if as_json:
        emit_json({"id": job.id, "owner": job.owner, "package_sha256": job.package_sha256})
    else:
        print(job.id)


@job_app.command("status")
def status(
    job_id: JobIdArg,
    root: RootOpt,
    email: EmailOpt,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the owner.")] = 30,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the owner's daemon for the state of a job you submitted."""
    with _asking(root, email, state_dir, storage_option) as rds:
        view = rds.job(job_id).status(timeout=timeout)
    _print_job(view, as_json)


@job_app.command("wait")
def wait(
    job_id: JobIdArg,
    root: RootOpt,
    email: EmailOpt,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait until the job is rejected, shared or withheld (exit 1 unless shared)."""
    with _asking(root, email, state_dir, storage_option) as rds:
        job = rds.job(job_id)
        state = job.wait(timeout)
        view = {"id": job.id, "status": state.value, "reason": job.last_reason}
    _print_job(view, as_json)
    raise typer.Exit(0 if state is JobState.SHARED else 1)


@job_app.command("results")
def results(
    job_id: JobIdArg,
    out: Annotated[Path, typer.Option("--out", help="Folder to write outputs and logs to.")],
    root: RootOpt,
    email: EmailOpt,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the owner.")] = 300,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a shared job's outputs and logs."""
    with _asking(root, email, state_dir, storage_option) as rds:
        files = rds.job(job_id).results(out, timeout=timeout)
    if as_json:
        emit_json({"out": str(out), "files": files})
    else:
        for f in files:
            console.print(str(out / f), markup=False)


@job_app.command("try")
def try_(
    code_dir: Annotated[Path, typer.Argument(help="The folder of code to try.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset whose mock to use.")],
    datasite: Annotated[str, typer.Option("--datasite", help="The dataset's owner.")],
    root: RootOpt,
    entry: EntryOpt = "python main.py",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where outputs and logs go \\[default: a temp dir]."),
    ] = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run code on a dataset's mock here, packed and sandboxed as the owner would run it."""
    into = out or Path(tempfile.mkdtemp(prefix="fedbox-try-"))
    with open_root(root, storage_option) as store, tempfile.TemporaryDirectory() as tmp:
        try:
            package, _ = pack(code_dir, entry=entry, dataset=dataset)
            unpack(package, Path(tmp, "code"))
            mock = fetch_mock(store, validate_email(datasite), dataset, Path(tmp))
            result = run_sandboxed(
                entry,
                code=Path(tmp, "code"),
                data=mock,
                output=into / "output",
                logs=into / "logs",
                job_id="try",
            )
        except (FedboxError, ValueError) as exc:
            raise fail(exc) from exc
    _print_run(result, as_json, {"out": str(into)})
    if not as_json:
        console.print(f"outputs in {into / 'output'}, logs in {into / 'logs'}", markup=False)
    raise typer.Exit(0 if result.ok else 1)


# -- both roles --------------------------------------------------------------------------


@job_app.command("list")
def list_(
    email: EmailOpt,
    status_filter: Annotated[
        JobState | None, typer.Option("--status", help="Only jobs in this state (received).")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="First ask each owner for your jobs' states.")
    ] = False,
    root: OptionalRootOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each owner.")] = 30,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Jobs sent to you (as owner), then jobs you submitted with their last known state.

    With ``--refresh --root R``: their states as their owners say now.
    """
    workspace = Workspace.for_email(validate_email(email), state_dir).ensure()
    if refresh:
        if root is None:
            raise fail("--refresh needs --root (it asks the owners)")
        with _asking(root, email, state_dir, storage_option) as rds:
            rds.refresh(timeout=timeout)
    with Owner(workspace) as owner:
        received = owner.jobs.list(status=status_filter)
    sent = sent_jobs(workspace)
    if as_json:
        emit_json(
            {
                "received": [{**public_view(j), "submitter": j.submitter} for j in received],
                "submitted": sent,
            }
        )
        return
    table = Table(title=f"jobs received by {email}")
    for column in ("id", "name", "from", "dataset", "status", "reason"):
        table.add_column(column)
    for j in received:
        table.add_row(j.id, j.name, j.submitter, j.dataset, j.status.value, j.reason)
    console.print(table)
    table = Table(title=f"jobs submitted by {email} (last known state)")
    for column in ("id", "name", "to", "dataset", "status", "reason"):
        table.add_column(column)
    for s in sent:
        table.add_row(s["id"], s["name"], s["owner"], s["dataset"], s["status"], s["reason"])
    console.print(table)


# -- owner -------------------------------------------------------------------------------


@job_app.command("review")
def review(
    job_id: JobIdArg,
    email: EmailOpt,
    show_path: Annotated[
        str | None, typer.Option("--show", help="Print this file of the job's code.")
    ] = None,
    state_dir: StateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a job would run: entry, dataset, submitter, every file with its sha256."""
    with _owner(email, state_dir) as owner:
        try:
            job = owner.jobs.get(job_id)
            if show_path is not None:
                print(owner.code_file(job.id, show_path).decode("utf-8", errors="replace"), end="")
                return
            manifest = owner.manifest(job.id)
            history = owner.jobs.events(job.id)
            requirements = owner.requirements(job.id)
        except (FedboxError, KeyError) as exc:
            raise fail(exc) from exc
    if as_json:
        emit_json(
            {
                "job": {**public_view(job), "submitter": job.submitter},
                "manifest": manifest.model_dump(),
                "requirements": requirements,
                "history": [asdict(e) for e in history],
            }
        )
        return
    console.print(f"job {job.id} from {job.submitter}: {job.status}", markup=False)
    console.print(f"entry: {manifest.entry}", markup=False)
    console.print(
        f"dataset: {manifest.dataset}   package sha256: {job.package_sha256}", markup=False
    )
    for f in manifest.files:
        console.print(f"  {f.path}  {f.size:,} bytes  {f.sha256}", markup=False)
    if requirements:
        console.print("dependencies (installed only with run --with-deps):")
        for line in requirements:
            console.print(f"  {line}", markup=False)
    console.print("history:")
    for e in history:
        when = datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        why = f" ({e.reason})" if e.reason else ""
        console.print(f"  {when}  {e.actor}: {e.action}{why}", markup=False)


def _decide(
    email: str, state_dir: Path | None, as_json: bool, act: Callable[[Owner], JobRecord]
) -> None:
    with _owner(email, state_dir) as owner:
        try:
            job = act(owner)
        except (FedboxError, KeyError, ValueError) as exc:
            raise fail(exc) from exc
    _print_job(job, as_json)


def _decision(name: str, doc: str, act: Callable[[Owner, str], JobRecord]) -> None:
    """Register ``fedbox job NAME JOB_ID``: one owner decision that needs no reason."""

    def command(
        job_id: JobIdArg, email: EmailOpt, state_dir: StateOpt = None, as_json: JsonOpt = False
    ) -> None:
        _decide(email, state_dir, as_json, lambda o: act(o, job_id))

    job_app.command(name, help=doc)(command)


def _reasoned_decision(name: str, doc: str, act: Callable[[Owner, str, str], JobRecord]) -> None:
    """Register ``fedbox job NAME JOB_ID --reason R``: a decision told to the submitter."""

    def command(
        job_id: JobIdArg,
        reason: ReasonOpt,
        email: EmailOpt,
        state_dir: StateOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        _decide(email, state_dir, as_json, lambda o: act(o, job_id, reason))

    job_app.command(name, help=doc)(command)


_decision(
    "approve",
    "Approve a submitted job (it may then run on the private data).",
    lambda o, job_id: o.approve(job_id),
)
_reasoned_decision("reject", "Reject a submitted job, saying why.", Owner.reject)
_decision(
    "share",
    "Release a run's outputs and logs to its submitter (encrypted, on their request).",
    lambda o, job_id: o.share(job_id),
)
_reasoned_decision(
    "withhold",
    "Keep a run's outputs and logs; the submitter learns the reason only.",
    Owner.withhold,
)


@job_app.command("run")
def run(
    job_id: JobIdArg,
    email: EmailOpt,
    mock: Annotated[
        bool,
        typer.Option(
            "--mock", help="Run on the published mock instead (the job's state does not change)."
        ),
    ] = False,
    with_deps: Annotated[
        bool,
        typer.Option(
            "--with-deps",
            help="First install the job's requirements.txt into a venv of its own "
            "(outside the sandbox, with this machine's pip settings).",
        ),
    ] = False,
    root: OptionalRootOpt = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run an approved job on the private data, in the sandbox (exit 1 if it failed)."""
    with _owner(email, state_dir) as owner:
        try:
            if mock:
                if root is None:
                    raise fail("--mock needs --root (the published mock is in the store)")
                with open_root(root, storage_option, identity_of(owner.workspace)) as store:
                    owner.store = store
                    result = owner.run_mock(job_id)
                extra = {"status": owner.jobs.get(job_id).status.value}
            else:
                job, result = owner.run(job_id, with_deps=with_deps)
                extra = {"status": job.status.value}
        except (FedboxError, KeyError) as exc:
            raise fail(exc) from exc
    _print_run(result, as_json, extra)
    raise typer.Exit(0 if result.ok else 1)


@job_app.command("outputs")
def outputs(
    job_id: JobIdArg, email: EmailOpt, state_dir: StateOpt = None, as_json: JsonOpt = False
) -> None:
    """What `share` would send: the run's output files and logs, with where they are."""
    with _owner(email, state_dir) as owner:
        try:
            files = owner.outputs(job_id)
            folder = owner.job_folder(job_id)
        except (FedboxError, KeyError) as exc:
            raise fail(exc) from exc
    if as_json:
        emit_json({"folder": str(folder), "files": [f.model_dump() for f in files]})
        return
    for f in files:
        console.print(f"{folder / f.path}  {f.size:,} bytes", markup=False)


@job_app.command("allow")
def allow(
    submitter: Annotated[str, typer.Option("--submitter", help="Whose package.")],
    package: Annotated[str, typer.Option("--package", help="The package sha256 (see review).")],
    email: EmailOpt,
    run_it: Annotated[bool, typer.Option("--run", help="Also run it.")] = False,
    share_it: Annotated[bool, typer.Option("--share", help="Also share its results.")] = False,
    state_dir: StateOpt = None,
) -> None:
    """Auto-approve this submitter's exact package from now on (a daemon applies it)."""
    workspace = Workspace.for_email(validate_email(email), state_dir).ensure()
    try:
        rule = Rule(
            submitter=validate_email(submitter),
            package_sha256=package,
            run=run_it or share_it,
            share=share_it,
        )
    except ValueError as exc:
        raise fail(exc) from exc
    Rules(workspace).add(rule)
    console.print(
        f"auto-approving {rule.submitter}'s package {package[:16]}…"
        + (" and running it" if rule.run else "")
        + (", sharing results" if rule.share else "")
    )


job_app.command("submit-fl")(submit_fl)
