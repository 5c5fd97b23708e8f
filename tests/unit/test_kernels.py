"""Kernels by name (matrix/kernels.yaml), the --kernel option's bad input, the kernel view
and the re-run of a hung row: fast, no VM needed."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prober.engine.target_runs import deadline_retry, default_deadline_hit, own_deadline_note
from prober.errors import UsageError
from prober.experiments import load as load_experiments
from prober.lab import base_image, kernels, vm, vm_cache, vm_config, vm_image
from prober.report import kernels as kernel_view
from prober.results import Cell, RunResults, StepRecord, TargetInfo

from .real_results import real_run


def test_names_resolve_to_packages_and_package_names_still_work() -> None:
    assert kernels.resolve("6.12").package == "linux-image-6.12-amd64"
    old = kernels.resolve("5.10")
    assert (old.package, old.suite) == ("linux-image-amd64", "bullseye")
    # The default kernel by its package name is the default kernel, as before names.
    assert kernels.resolve("linux-image-amd64") == kernels.resolve(None) == kernels.resolve("6.1")
    other = kernels.resolve("linux-image-6.12.117+deb12-amd64")
    assert other.package == other.name and not other.default


def test_each_kernel_has_its_own_vm_directory_and_port() -> None:
    table = kernels.table()
    ports = [k.port for k in table.kernels]
    assert len(set(ports)) == len(ports)
    assert table.default.port == vm_config.DEFAULT_PORT and table.default.key == ""
    cache = Path("/c")
    dirs = {vm._vm_dir(cache, k.key) for k in table.kernels}
    assert len(dirs) == len(table.kernels)
    assert vm._vm_dir(cache, table.default.key) == cache / "vm"  # today's VM stays put
    assert make_key("6.12") == "6.12" and vm_config.make_config("6.12").port != 23750


def make_key(name: str) -> str:
    return vm_config.make_config(kernel=name).key


@pytest.mark.parametrize("given", ["4.19", "latest", "6.1,", "vmlinuz"])
def test_unknown_kernels_name_the_valid_ones(given: str) -> None:
    with pytest.raises(UsageError) as raised:
        kernels.resolve_list(given)
    assert "--kernel" in str(raised.value)
    if given != "6.1,":
        assert "5.10, 6.1, 6.12" in str(raised.value)


def test_another_suites_kernel_changes_the_recipe_and_this_suites_do_not() -> None:
    sources = base_image.DebianSources("http://m/debian", "http://m/sec")
    plain = vm_image.recipe_hash("linux-image-amd64", "1", sources)
    assert plain == vm_image.recipe_hash("linux-image-amd64", "1", sources, "")
    assert plain != vm_image.recipe_hash("linux-image-amd64", "1", sources, "bullseye")


def test_kernel_file_problems_are_one_line() -> None:
    for text in ("kernels: {}", "default: x\nkernels: {a: {package: linux-image-x, port: 1}}",
                 "default: a\nkernels: {a: {package: vmlinuz, port: 1}}",
                 "default: a\nkernels: {a: {package: linux-image-x, port: 0}}"):  # fmt: skip
        with pytest.raises(UsageError):
            kernels.parse(text, "k.yaml")


def _prober(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, vm_cache.CACHE_ENV: str(tmp / "cache")}
    env.pop("DOCKER_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False, cwd=tmp,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--fs", "nfs4.2", "--kernel", "4.19"], "give one of 5.10, 6.1, 6.12"),
        (["run", "--fs", "nfs4.2", "--kernel", "6.1,,6.12"], "comma-separated"),
        (["run", "--fs", "nfs4.2", "--kernel", "6.12", "--docker-host", "tcp://127.0.0.1:1"],
         "--docker-host"),
        (["lab", "vm", "up", "--kernel", "2.6"], "give one of 5.10, 6.1, 6.12"),
        (["lab", "vm", "status", "--kernel", "2.6"], "give one of 5.10, 6.1, 6.12"),
        (["lab", "vm", "down", "--kernel", "2.6"], "give one of 5.10, 6.1, 6.12"),
    ],
)  # fmt: skip
def test_bad_kernel_input_exits_2_and_creates_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = _prober([*args, "--out", str(tmp_path / "out")] if args[0] == "run" else args,
                     tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def _cell(target: str, verdict: str, outcome: str, exp: str = "flock.exclusive.clients") -> Cell:
    step = StepRecord(0, "B", "flock", {}, outcome, decisive=True)
    return Cell(exp, target, "flock", outcome, verdict, "denied", steps=[step])


def _run(*cells: Cell) -> RunResults:
    names = sorted({c.target for c in cells})
    return RunResults("t", {}, targets=[TargetInfo(n, True) for n in names], cells=list(cells))


def test_kernel_view_lists_differing_rows_first_with_each_sides_steps() -> None:
    run = _run(
        _cell("nfs4.2@6.1", "as-reference", "denied:EAGAIN"),
        _cell("nfs4.2@6.12", "no-exclusion", "granted"),
        _cell("nfs4.2@6.1", "as-reference", "granted", "flock.shared-shared.processes"),
        _cell("nfs4.2@6.12", "as-reference", "granted", "flock.shared-shared.processes"),
        _cell("nfs3@6.1", "as-reference", "denied:EAGAIN"),  # nfs3@6.12 did not run
    )
    view = kernel_view.build([run])
    assert view.kernels == ["6.1", "6.12"]
    assert [(r.target, r.experiment) for r in view.differing] == [
        ("nfs4.2", "flock.exclusive.clients")
    ]
    assert [r.target for r in view.partial()] == ["nfs3"]
    text = kernel_view.markdown(view)
    assert "nfs3: 1 rows, not run on 6.12" in text
    assert "no-exclusion (granted)" in text and "#0 B flock -> granted" in text
    assert kernel_view.excluding_apis(view) == {
        "6.1": {"flock": ["nfs3", "nfs4.2"]},
        "6.12": {"flock": []},
    }


def test_one_kernels_cells_compare_like_a_run_of_their_own() -> None:
    run = _run(
        _cell("nfs3@5.10", "as-reference", "denied:EAGAIN"), _cell("nfs3@6.1", "hang", "timeout")
    )
    alone = kernel_view.select(run, "5.10", "r.json")
    assert [c.target for c in alone.cells] == ["nfs3"] and [t.name for t in alone.targets] == [
        "nfs3"
    ]
    assert kernel_view.single_kernel(alone) == "" and kernel_view.single_kernel(run) == ""
    with pytest.raises(UsageError, match=r"5\.10, 6\.1"):
        kernel_view.select(run, "6.12", "r.json")
    with pytest.raises(UsageError, match="at least two kernels"):
        kernel_view.build([alone])


def test_a_hung_row_run_again_says_whether_it_was_slow_or_a_hang() -> None:
    first = _cell("nfs3", "hang", "timeout")
    slow = deadline_retry(first, _cell("nfs3", "as-reference", "denied:EAGAIN"), 30.0)
    assert slow.verdict == "as-reference" and slow.metrics["deadline"]["kind"] == "slow"
    assert slow.metrics["deadline"]["first_verdict"] == "hang"
    hung = deadline_retry(first, _cell("nfs3", "hang", "timeout"), 30.0)
    assert hung.verdict == "hang" and hung.metrics["deadline"]["kind"] == "hang"
    assert any("30 s" in note for note in hung.notes)


def _timed_out_at(exp_id: str, index: int) -> Cell:
    step = StepRecord(index, "B", "lock", {}, "timeout", decisive=True)
    return Cell(exp_id, "nfs3", "posix", "timeout", "hang", "granted", steps=[step])


def test_only_a_step_on_the_runs_default_deadline_makes_a_hung_row_run_again() -> None:
    experiments = {e.id: e for e in load_experiments()}
    fault = experiments["fault.crashed-holder.posix"]
    waits = [s for s in fault.steps if s.timeout is not None and s.op == "lock"]
    defaults = [s for s in fault.steps if s.timeout is None]
    assert waits and defaults  # the row has both kinds of step, as the matrix says
    # B's wait with the row's own deadline reached its horizon: nothing to tell apart.
    horizon = _timed_out_at(fault.id, waits[-1].index)
    assert not default_deadline_hit(horizon, fault)
    own_deadline_note(horizon, fault)
    assert any(f"{waits[-1].timeout:g} s" in note for note in horizon.notes)
    # A step on the run's default deadline (--step-timeout) may only have been slow.
    assert default_deadline_hit(_timed_out_at(fault.id, defaults[0].index), fault)
    plain = experiments["posix.exclusive.clients"]
    assert default_deadline_hit(_timed_out_at(plain.id, plain.steps[-1].index), plain)


def test_a_rerun_that_could_not_ask_its_question_decides_nothing() -> None:
    # The abandoned first run's actor may hold what the second needs (its directory): a
    # second run that could not be set up must not turn a hang into "slow".
    first = _cell("smb3", "hang", "timeout")
    undecided = deadline_retry(first, _cell("smb3", "not-applicable", "not-applicable"), 30.0)
    assert undecided.verdict == "hang" and undecided.metrics["deadline"]["kind"] == "undecided"
    assert any("not decided" in note for note in undecided.notes)


def _tag(run: RunResults, kernel: str) -> RunResults:
    tagged = copy.deepcopy(run)
    for info in tagged.targets:
        info.name = f"{info.name}@{kernel}"
    for cell in tagged.cells:
        cell.target = f"{cell.target}@{kernel}"
    return tagged


def test_prober_diff_compares_two_kernels_as_two_runs(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    base = real_run(tmp_path / "locks", contrary=False)
    old, new = _tag(base, "6.1"), _tag(base, "6.12")
    lost = next(c for c in new.cells if c.experiment == "flock.exclusive-exclusive.processes")
    lost.outcome, lost.verdict = "granted", "no-exclusion"
    both = copy.deepcopy(old)
    both.targets += new.targets
    both.cells += new.cells
    files = {}
    for name, run in (("old", old), ("new", new), ("both", both)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(run.to_dict()))
    # Two single-kernel runs: matched target by target; one run of two kernels: chosen.
    chosen = ["--old-kernel", "6.1", "--new-kernel", "6.12"]
    for args in ([files["old"], files["new"]], [files["both"], files["both"], *chosen]):
        done = _prober(["diff", *map(str, args), "--format", "json"], tmp_path)
        assert done.returncode == 1, done.stderr  # the exclusion lost on 6.12
        assert "flock.exclusive-exclusive.processes" in done.stdout
    done = _prober(
        ["diff", str(files["both"]), str(files["both"]), "--old-kernel", "5.10"], tmp_path
    )
    assert done.returncode == 2 and "kernel '5.10'" in done.stderr
