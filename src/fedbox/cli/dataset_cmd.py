"""``fedbox dataset``: publish a mock of private data, list and show datasets, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.rds_options import JsonOpt, console, emit_json
from fedbox.cli.roots import RootOpt, StorageOpt, fail, identity_of, open_root
from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace
from fedbox.rds import DatasetError
from fedbox.rds.datasets import (
    auto_approvers,
    create_dataset,
    delete_dataset,
    get_dataset,
    list_datasets,
)

__all__ = ["dataset_app"]

dataset_app = typer.Typer(
    help="Datasets: a mock published for scientists, the private data kept where it is.",
    no_args_is_help=True,
)


@dataset_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Dataset name (letters, digits, . _ -).")],
    private: Annotated[Path, typer.Option("--private", help="Folder of the private data.")],
    mock: Annotated[Path, typer.Option("--mock", help="Folder of the mock data to publish.")],
    root: RootOpt,
    email: EmailOpt,
    description: Annotated[
        Path | None, typer.Option("--description", help="A Markdown file describing it.")
    ] = None,
    auto_approve: Annotated[
        list[str] | None,
        typer.Option(
            "--auto-approve",
            help="Approve this sender's code jobs on it unattended (repeat for each); "
            "you still run and share them. FL jobs still need you.",
        ),
    ] = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish the mock and a description; record the private folder's path and who is
    auto-approved (only in your state dir)."""
    text = ""
    if description is not None:
        try:
            text = description.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"--description {description}: {exc}") from exc
    workspace = Workspace.for_email(validate_email(email), state_dir).ensure()
    with open_root(root, storage_option, identity_of(workspace)) as store:
        try:
            info = create_dataset(
                store,
                workspace,
                name,
                private=private,
                mock=mock,
                description=text,
                auto_approve=auto_approve or (),
            )
        except DatasetError as exc:
            raise fail(exc) from exc
    approvers = auto_approvers(workspace, name)
    if as_json:
        emit_json({**info.model_dump(), "auto_approve": approvers})
        return
    console.print(f"published {info.name} ({len(info.files)} mock files) for {info.owner}")
    if approvers:
        console.print(
            f"auto-approving code jobs on {info.name} from {', '.join(approvers)}: your daemon "
            "approves them, you still run and share them. Their FL jobs still need your "
            "approval (or a pinned `fedbox job allow` rule), since approving one runs it.",
            highlight=False,
        )


@dataset_app.command("list")
def list_(
    root: RootOpt,
    datasite: Annotated[
        str | None, typer.Option("--datasite", help="Only this owner's datasets.")
    ] = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Published datasets: everyone's, or one owner's."""
    with open_root(root, storage_option) as store:
        try:
            found = list_datasets(store, datasite)
        except ValueError as exc:
            raise fail(exc) from exc
    if as_json:
        emit_json([d.model_dump() for d in found])
        return
    table = Table(title="datasets")
    for column in ("owner", "name", "mock files", "bytes"):
        table.add_column(column)
    for d in found:
        table.add_row(d.owner, d.name, str(len(d.files)), f"{sum(f.size for f in d.files):,}")
    console.print(table)


@dataset_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    datasite: Annotated[str, typer.Option("--datasite", help="Its owner.")],
    root: RootOpt,
    email: Annotated[
        str | None,
        typer.Option("--email", help="You; as its owner you also see who is auto-approved."),
    ] = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One dataset: its description and mock files (and, to its owner, its auto-approvers)."""
    with open_root(root, storage_option) as store:
        try:
            info = get_dataset(store, datasite, name)
        except (DatasetError, ValueError) as exc:
            raise fail(exc) from exc
    approvers = None
    if email is not None and email == info.owner:
        approvers = auto_approvers(Workspace.for_email(info.owner, state_dir), name)
    if as_json:
        emit_json(info.model_dump() | ({} if approvers is None else {"auto_approve": approvers}))
        return
    console.print(f"[bold]{info.name}[/bold] of {info.owner}")
    console.print(info.description or "(no description)", markup=False)
    for f in info.files:
        console.print(f"  mock/{f.path}  {f.size:,} bytes  sha256 {f.sha256}", markup=False)
    if approvers is not None:
        who = ", ".join(approvers) or "nobody"
        console.print(f"auto-approved code jobs from: {who}", highlight=False, markup=False)


@dataset_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Your dataset's name.")],
    root: RootOpt,
    email: EmailOpt,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unpublish your dataset and forget its private path (the private data stays)."""
    workspace = Workspace.for_email(validate_email(email), state_dir).ensure()
    with open_root(root, storage_option, identity_of(workspace)) as store:
        try:
            delete_dataset(store, workspace, name)
        except DatasetError as exc:
            raise fail(exc) from exc
    if as_json:
        emit_json({"deleted": name})
    else:
        console.print(f"deleted {name}")
