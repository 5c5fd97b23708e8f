"""Loading and validating the experiment catalogue."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.errors import UsageError
from prober.experiments import DEFAULT_FILE, load, parse, select

DESIGN_IDS = [
    "flock.shared-shared.processes",
    "posix.shared-exclusive.processes",
    "ofd.exclusive-exclusive.processes",
    "flock.exclusive.same-process-two-fds",
    "ofd.exclusive.threads",
    "posix.release-on-close-other-fd",
    "flock.fork-inheritance",
    "posix.upgrade-downgrade",
    "posix.exclusive.readonly-fd",
    "ofd.shared.writeonly-fd",
    "flock.zero-length-file",
    "flock.one-byte-file",
    "posix.kill-holder-releases",
    "ofd.blocking-handoff",
    "flock.exclusion-stress",
    "posix.range.nonoverlapping",
    "posix.range.beyond-eof",
    "posix.range.len0-to-eof",
    "posix.range.split-unlock",
    "posix.deadlock-detection",
    "cross.flock-vs-posix.processes",
    "cross.flock-vs-posix.same-process",
    "cross.posix-vs-ofd.processes",
    "cross.flock-vs-ofd.processes",
    "setup.create-in-readonly-dir",
    "setup.hardlink-lockfile",
]


def test_the_catalogue_loads_and_uses_the_design_ids() -> None:
    ids = {e.id for e in load()}
    assert set(DESIGN_IDS) <= ids
    prefixes = (
        "setup.lock-existing-in-readonly-dir.",
        "setup.readonly-mount.",
        "setup.lock-directory.",
        "setup.unlink-recreate-while-locked.",
        "setup.delete-locked-file.",
    )
    for prefix in prefixes:
        assert any(i.startswith(prefix) for i in ids), prefix


def test_every_experiment_has_one_decisive_step_with_a_reference() -> None:
    for exp in load():
        assert exp.decisive.expect, exp.id
        assert exp.reference == exp.decisive.expect
        assert exp.source and exp.question


GOOD = """
experiments:
  - id: "{api}.x"
    apis: [flock, posix]
    question: q
    source: s
    actors: {A: process}
    steps:
      - {actor: A, op: open}
      - {actor: A, op: lock, lock: ex, decisive: true, expect: {flock: granted, posix: denied}}
"""


def test_templates_expand_per_api_with_per_api_expectations() -> None:
    flock, posix = parse(GOOD)
    assert (flock.id, posix.id) == ("flock.x", "posix.x")
    assert flock.decisive.args["api"] == "flock"
    assert (flock.reference, posix.reference) == ("granted", "denied")


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (("op: lock", "op: lok"), r"<t>:10: flock.x: steps\[1\].op: 'lok' is not an op"),
        (("lock: ex", "lock: xx"), r"<t>:10: flock.x: steps\[1\].lock: must be sh or ex"),
        (("actor: A, op: lock", "actor: Z, op: lock"), r"<t>:10: .*actor: 'Z' is not a declared"),
        (("decisive: true, ", ""), r"exactly one step must be decisive"),
        (("posix: denied", "posix: maybe"), r"<t>:10: .*expect: 'maybe' is not an outcome"),
        (("apis: [flock, posix]", "apis: [flock, nfs]"), r"<t>:3: .*'nfs' is not one of"),
        (("question: q", "quest: q"), r"<t>:3: .*unknown field\(s\) quest"),
        (("{actor: A, op: open}", "{actor: A, op: open, colour: red}"), r"<t>:9: .*colour"),
    ],
)
def test_mistakes_are_reported_with_file_line_and_field(
    mutation: tuple[str, str], message: str
) -> None:
    old, new = mutation
    assert old in GOOD
    with pytest.raises(UsageError, match=message):
        parse(GOOD.replace(old, new, 1), "<t>")


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(UsageError, match=r"<t>:3: not valid YAML"):
        parse("experiments:\n  - id: a\n    question: a: b: c\n", "<t>")


def test_select_rejects_unknown_names_listing_valid_ones() -> None:
    experiments = load()
    with pytest.raises(UsageError, match="valid: flock, posix, ofd, lockfileex"):
        select(experiments, None, "flock,fcntl")
    with pytest.raises(UsageError, match="matches no experiment"):
        select(experiments, "nosuch.*", None)
    chosen = select(experiments, "flock.*,cross.*", "flock")
    assert chosen and all(e.id.startswith("flock.") for e in chosen)


def test_the_catalogue_file_is_in_the_matrix_directory() -> None:
    assert DEFAULT_FILE.parent.name == "matrix" and DEFAULT_FILE.exists()


_name = st.from_regex(re.compile(r"[a-z][a-z0-9-]{0,12}"), fullmatch=True)
_outcome = st.sampled_from(["granted", "denied", "denied:EAGAIN", "error:EBADF", "timeout"])
_step = st.fixed_dictionaries(
    {
        "actor": st.just("A"),
        "op": st.sampled_from(["lock", "test"]),
        "api": st.sampled_from(["flock", "posix", "ofd"]),
        "lock": st.sampled_from(["sh", "ex"]),
        "start": st.integers(0, 2**40),
        "len": st.integers(0, 2**40),
        "expect": _outcome,
    }
)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(_name, min_size=1, max_size=4, unique=True),
    steps=st.lists(_step, min_size=1, max_size=5),
    # YAML 1.1 counts NEL, LS and PS as line breaks, which a scalar folds to a space: a file
    # can only carry them escaped, so raw ones are not part of a round trip.
    question=st.text(
        st.characters(blacklist_characters="\x85\u2028\u2029"), min_size=1, max_size=40
    ).filter(str.strip),
)
def test_yaml_round_trip(names: list[str], steps: list[dict[str, object]], question: str) -> None:
    """Experiments written out as YAML load back with the same fields."""
    entries = []
    for name in names:
        marked = [dict(s) for s in steps]
        marked[-1]["decisive"] = True
        entries.append(
            {
                "id": f"cross.{name}",
                "question": question,
                "source": "fcntl(2)",
                "actors": {"A": "process"},
                "steps": marked,
            }
        )
    loaded = parse(yaml.safe_dump({"experiments": entries}, allow_unicode=True))
    assert [e.id for e in loaded] == [f"cross.{n}" for n in names]
    for exp in loaded:
        assert exp.question == question
        for step, raw in zip(exp.steps, steps, strict=True):
            assert step.expect == raw["expect"]
            assert {k: step.args[k] for k in ("api", "lock", "start", "len")} == {
                k: raw[k] for k in ("api", "lock", "start", "len")
            }
