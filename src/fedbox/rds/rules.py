"""Auto-approval rules: the owner's standing decisions, applied by the daemon.

Two kinds, both matched against the request's authenticated sender only (never a field
the sender wrote):

- a pinned :class:`Rule` (``fedbox job allow``) names one submitter's one package by its
  digest (every file's sha256 and the entry command, :meth:`Manifest.digest`), so a
  changed byte anywhere, launcher included, needs the owner again; it may also run the
  job and share its outputs;
- a :class:`DatasetRule` (``fedbox dataset create --auto-approve EMAIL``) trusts one
  submitter with one dataset whatever the code: it only approves, so the owner still
  runs and shares, having seen the outputs. It never approves an FL job, whose approval
  alone makes the daemon run the client role on the private data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace, create_private
from fedbox.rds.datasets import auto_approvers
from fedbox.rds.models import JobRecord

__all__ = ["DatasetRule", "Rule", "Rules", "approving_rule"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    submitter: str
    package_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    run: bool = False
    share: bool = False

    @property
    def actor(self) -> str:
        return f"rule:{self.submitter}:{self.package_sha256[:16]}"

    @property
    def description(self) -> str:
        then = ", run and share" if self.share else " and run" if self.run else ""
        return f"pinned rule: approve{then} {self.submitter}'s package"


class DatasetRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    submitter: str
    dataset: str
    run: Literal[False] = False
    share: Literal[False] = False
    """Never: a dataset rule only approves (the fields let the daemon treat both kinds
    alike)."""

    @property
    def actor(self) -> str:
        return f"rule:{self.submitter}:dataset:{self.dataset}"

    @property
    def description(self) -> str:
        return f"dataset rule: approve {self.submitter}'s code jobs on {self.dataset}"


class Rules:
    """``{state_dir}/rds/rules.json``, read afresh on every lookup so the daemon sees
    rules the owner adds while it runs."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.path: Path = workspace.state_dir / "rds" / "rules.json"

    def all(self) -> list[Rule]:
        if not self.path.exists():
            return []
        return [Rule.model_validate(r) for r in json.loads(self.path.read_text())]

    def add(self, rule: Rule) -> None:
        validate_email(rule.submitter)
        kept = [
            r
            for r in self.all()
            if (r.submitter, r.package_sha256) != (rule.submitter, rule.package_sha256)
        ]
        self._write([*kept, rule])

    def remove(self, submitter: str, package_sha256: str) -> bool:
        rules = self.all()
        kept = [r for r in rules if (r.submitter, r.package_sha256) != (submitter, package_sha256)]
        self._write(kept)
        return len(kept) != len(rules)

    def match(self, submitter: str, package_sha256: str) -> Rule | None:
        for rule in self.all():
            if rule.submitter == submitter and rule.package_sha256 == package_sha256:
                return rule
        return None

    def _write(self, rules: list[Rule]) -> None:
        create_private(self.path)
        tmp = create_private(self.path.with_name(".rules.json.tmp"))
        tmp.write_text(json.dumps([r.model_dump() for r in rules], indent=2))
        tmp.replace(self.path)


def approving_rule(rules: Rules, sender: str, job: JobRecord) -> Rule | DatasetRule | None:
    """The rule that approves ``job``, submitted by the authenticated ``sender``: a
    pinned one first (it may also run and share), else the dataset's, for code jobs."""
    pinned = rules.match(sender, job.package_sha256)
    if pinned is not None:
        return pinned
    if job.kind == "code" and sender in auto_approvers(rules.workspace, job.dataset):
        return DatasetRule(submitter=sender, dataset=job.dataset)
    return None
