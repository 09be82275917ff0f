"""Auto-approval rules: the owner's standing decision for one submitter's one package.

A rule matches only the request's authenticated sender and the package digest (every
file's sha256 and the entry command, :meth:`Manifest.digest`), so a changed byte
anywhere, launcher included, needs the owner again.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace, create_private

__all__ = ["Rule", "Rules"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    submitter: str
    package_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    run: bool = False
    share: bool = False

    @property
    def actor(self) -> str:
        return f"rule:{self.submitter}:{self.package_sha256[:16]}"


class Rules:
    """``{state_dir}/rds/rules.json``, read afresh on every lookup so the daemon sees
    rules the owner adds while it runs."""

    def __init__(self, workspace: Workspace) -> None:
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
