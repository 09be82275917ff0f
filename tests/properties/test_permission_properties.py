"""``syft.pub.yaml`` over arbitrary bytes and damaged YAML: loaded strictly it is accepted
or refused with InvalidPermissionFile, loaded leniently it never raises, and nesting,
aliases or a flood of tiny values cost bounded time and memory."""

from __future__ import annotations

import random

import pytest
import yaml
from bounded import MIB, accepted_or_refused
from hypothesis import example, given
from hypothesis import strategies as st

from fedbox.testing.parsers import mutate, parse_permissions, seeds

pytestmark = pytest.mark.timeout(240)

principals = st.sampled_from(["*", "USER", "a@x.org", "b@x.org", "bad email", "", "a@x..org"])
patterns = st.text(alphabet="ab*?[]!-/{}.\\ ", max_size=12) | st.sampled_from(
    ["**", "{useremail}/**", "{{.UserEmail}}/*.csv", "[z-a]", "../x", "/abs", "a//b"]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
access = st.dictionaries(
    st.sampled_from(["read", "write", "admin", "owner"]),
    st.lists(principals | scalars, max_size=3) | scalars,
    max_size=3,
)
rules = st.fixed_dictionaries(
    {"pattern": patterns | scalars, "access": access | scalars},
    optional={"extra": scalars},
)
documents = st.fixed_dictionaries(
    {},
    optional={"rules": st.lists(rules | scalars, max_size=4) | scalars, "terminal": scalars},
)


@st.composite
def yaml_texts(draw: st.DrawFn) -> bytes:
    """A permission file as YAML a person or a tool would write, then maybe damaged."""
    text = yaml.safe_dump(draw(documents), default_flow_style=draw(st.booleans()))
    data = text.encode()
    if draw(st.booleans()):
        data = mutate(draw(st.randoms(use_true_random=False)), data)
    return data


# What YAML can say besides plain data: tags that convert, aliases, nesting.
TAGGED = [
    b"terminal: !!timestamp not-a-date\n",
    b"terminal: 2001-02-30\n",
    b"terminal: !!int nope\n",
    b"terminal: !!float nope\n",
    b"terminal: !!bool nope\n",
    b"terminal: !!binary '!!!'\n",
    b"rules: !!set {a, b}\n",
    b"rules: !!omap [1]\n",
    b"rules: !!pairs [[1, 2, 3]]\n",
    b"terminal: !!python/object:os.system {}\n",
    b"<<: [1]\n",
    b"? [a]\n: 1\n",
    b"rules:\n  - pattern: 2001-02-29\n    access: {read: ['*']}\n",
    b"rules:\n  - pattern: !!int 0x\n    access: {read: ['*']}\n",
]


def _billion_laughs(levels: int, key: bytes = b"terminal") -> bytes:
    """``key`` holds levels of 9 references to the level below: 9**levels values once
    expanded, in a few hundred bytes."""
    items = [b"&a0 [x, x, x, x, x, x, x, x, x]"]
    items += [b"&a%d [%s]" % (i, b", ".join([b"*a%d" % (i - 1)] * 9)) for i in range(1, levels)]
    return key + b": [" + b", ".join(items) + b"]\n"


keys = st.sampled_from([b"rules", b"terminal", b"x"])


@st.composite
def yaml_tricks(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["tagged", "deep", "alias"]))
    if kind == "tagged":
        return draw(st.sampled_from(TAGGED))
    if kind == "deep":
        depth = draw(st.sampled_from([10, 40, 400]))
        open_, close = draw(st.sampled_from([(b"[", b"]"), (b"{a: ", b"}"), (b"- ", b"")]))
        key = draw(keys)
        if open_ == b"- ":
            nested = range(min(depth, 300))  # indentation grows with depth: keep it small
            return key + b":\n" + b"".join(b"  " * i + b"- " + b"\n" for i in nested)
        return key + b": " + open_ * depth + b"1" + close * depth
    return _billion_laughs(draw(st.integers(min_value=1, max_value=12)), draw(keys))


LOADER_BUDGET = 8 * MIB
"""What the YAML loader may hold besides a multiple of the file: its MAX_YAML_VALUES values
at ~600 bytes each (PyYAML's nodes, events and marks)."""

damaged_seeds = st.builds(
    mutate, st.randoms(use_true_random=False), st.sampled_from(seeds()["permissions"])
)
any_file = (
    st.binary(max_size=256)
    | st.text(max_size=200).map(str.encode)
    | damaged_seeds
    | yaml_texts()
    | yaml_tricks()
)


def test_valid_files_are_accepted() -> None:
    for data in seeds()["permissions"]:
        assert accepted_or_refused(parse_permissions, data)


@given(any_file)
# PyYAML's constructors raised AttributeError, ValueError, KeyError (issue 18)
@example(b"terminal: !!timestamp not-a-date\n")
@example(b"terminal: 2001-02-30\n")
@example(b"terminal: !!bool nope\n")
# the composer recursed until RecursionError
@example(b"rules: " + b"[" * 1000 + b"]" * 1000)
# the error message expanded the aliases: 9**7 values
@example(_billion_laughs(7))
# a flood of tiny values: ~650 bytes each in the loader
@example(b"rules: [" + b"a," * 100_000 + b"a]\n")
def test_a_permission_file_is_accepted_or_refused(data: bytes) -> None:
    accepted_or_refused(parse_permissions, data, factor=64, constant=LOADER_BUDGET)


def test_random_damage_to_real_permission_files() -> None:
    """A quick sweep without shrinking, from a fixed seed."""
    rng = random.Random(18)
    for _ in range(300):
        data = mutate(rng, rng.choice(seeds()["permissions"]))
        accepted_or_refused(parse_permissions, data, factor=64, constant=LOADER_BUDGET)
