"""`prober check PATH`: does locking work on this existing storage? Answers in seconds with
an exit code a pipeline can use (README, exit codes):

0  every required guarantee holds (with neither --require nor --profile: no lock was granted
   where it had to exclude, and no call hung)
1  a lock was granted where it had to exclude
2  usage: bad options or PATH; nothing was created
3  a required guarantee is unsupported, could not be verified, or something failed
4  a call hung past its deadline

Everything happens inside a fresh private subdirectory of PATH, removed afterwards (also on
Ctrl-C and SIGTERM); see prober.check.private_dir for what a SIGKILLed check leaves behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from prober.check import clush, fleet, fleet_report, guarantees, private_dir, profiles, rows
from prober.check.advice import advise
from prober.check.peer import PEER_DIR, Joiner, Leader, parse_token
from prober.check.report import build, local_only_options
from prober.engine.agents import AgentPool
from prober.engine.cleanup import CleanupStack
from prober.errors import EXIT_OK, ProberError, UsageError
from prober.experiments import Experiment, load
from prober.fingerprint import fingerprint_path
from prober.report import Format, check_format
from prober.report.output import write_text
from prober.results import Cell
from prober.targets.base import PreparedTarget

JOIN_RETRY_S = 0.2
# Agents started ahead of time, in parallel: most rows use two or three processes, the
# stress rows four.
WARM_AGENTS = 4


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(f"prober: {message}", file=sys.stderr, flush=True)


def run(
    *,
    path: Path,
    profile: str | None = None,
    require: str | None = None,
    as_json: bool = False,
    fmt: str = "text",
    peer: bool = False,
    join: str | None = None,
    peer_timeout: float = 120.0,
    step_timeout: float = 5.0,
    clean: bool = False,
    hosts: str | None = None,
    fanout: int | None = None,
    node: str | None = None,
    node_timeout: float = 900.0,
    remote_prober: str = "prober",
    connect_timeout: float = 10.0,
) -> int:
    # Everything the user gave is checked before anything is created.
    if step_timeout <= 0:
        raise UsageError(f"--step-timeout {step_timeout}: give a positive number of seconds")
    if peer_timeout <= 0:
        raise UsageError(f"--peer-timeout {peer_timeout}: give a positive number of seconds")
    if as_json and fmt != "text":
        raise UsageError(f"--json and --format {fmt} both choose the output; give one of them")
    formatter = check_format("json" if as_json else fmt)
    if peer and join:
        raise UsageError("--peer starts a two-host check and --join joins one; give one of them")
    if clean and (peer or join or profile or require):
        raise UsageError("--clean only removes stale check directories; give it alone with PATH")
    if hosts is not None and (peer or join or clean or profile or require):
        raise UsageError(
            "--hosts runs its own cluster check; give it without --peer, --join, --clean, "
            "--profile and --require"
        )
    if hosts is not None and fmt != "text":
        raise UsageError("--hosts prints text or --json; --format md is not available with it")
    if node is not None and not join:
        raise UsageError("--node names this machine in a cluster check; it goes with --join")
    if node is not None:
        fleet.check_names([node])  # it names a directory: never a path
    if connect_timeout <= 0:
        raise UsageError(f"--connect-timeout {connect_timeout}: give a positive number of seconds")
    if node_timeout <= 0:
        raise UsageError(f"--node-timeout {node_timeout}: give a positive number of seconds")
    names = clush.expand(hosts) if hosts is not None else None
    if names is not None:
        fleet.check_names(names)
        # Every node's command runs until the report: a node beyond the fan-out would only
        # start when another had finished, long after the others stopped waiting for it.
        if fanout is not None and fanout < len(names):
            raise UsageError(
                f"--fanout {fanout}: a cluster check keeps all {len(names)} nodes connected "
                f"until the report; give at least {len(names)}"
            )
    token = parse_token(join) if join else None
    catalogue = load()
    known = {e.id for e in catalogue} | set(rows.CROSS_HOST_ROWS)
    chosen_profiles = profiles.select(profiles.load(known), profile)
    required = guarantees.parse(require, two_host=bool(peer or join))

    with private_dir.opened_base(path) as (base_fd, base):
        if clean:
            return _clean(base_fd, base)
        out = _output(formatter)
        if token is not None:
            return _join(base_fd, base, token, peer_timeout, out, node)
        if hosts is not None and names is not None:
            from prober.commands.check_fleet import run_fleet

            return run_fleet(
                base_fd=base_fd,
                base=base,
                catalogue=catalogue,
                nodeset=hosts,
                names=names,
                fanout=fanout or len(names),
                node_timeout=node_timeout,
                remote=remote_prober,
                connect_timeout=connect_timeout,
                peer_timeout=peer_timeout,
                step_timeout=step_timeout,
                emit=_fleet_output(as_json, fmt),
            )
        return _check(
            base_fd,
            base,
            catalogue,
            chosen_profiles,
            required,
            peer,
            peer_timeout,
            step_timeout,
            out,
        )


def _fleet_output(as_json: bool, fmt: str) -> Any:
    def emit(report: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
        else:
            sys.stdout.write(fleet_report.render_text(report))
        sys.stdout.flush()

    return emit


def _output(formatter: Format) -> Any:
    def emit(report: dict[str, Any]) -> None:
        write_text(formatter.check(report), None)

    return emit


def _clean(base_fd: int, base: Path) -> int:
    removed, kept = private_dir.clean_stale(base_fd)
    for name in removed:
        _say(f"removed {base / name} (its check is gone)")
    for item in kept:
        _say(f"left {base / item.name}: {item.why}")
    if not removed and not kept:
        _say(f"no check directories in {base}")
    return EXIT_OK


def _fingerprint(base: Path) -> dict[str, Any]:
    fp = fingerprint_path(base)
    fp["path"] = str(base)
    return fp


def _check(
    base_fd: int,
    base: Path,
    catalogue: list[Experiment],
    chosen_profiles: list[profiles.Profile],
    required: list[guarantees.Guarantee],
    peer: bool,
    peer_timeout: float,
    step_timeout: float,
    emit: Any,
) -> int:
    started = time.monotonic()
    fp = _fingerprint(base)
    readonly = private_dir.is_readonly(base_fd)
    if readonly and peer:
        raise UsageError(f"{base} is on a read-only mount; two-host mode needs writable storage")
    private: private_dir.PrivateDir | None = None
    if not readonly:
        try:  # first, so that an unwritable PATH is a usage error with nothing done
            private = private_dir.create(base_fd, base)
        except private_dir.ReadOnlyStorage:
            if peer:
                raise UsageError(
                    f"{base} is read-only storage; two-host mode needs it writable"
                ) from None
            readonly = True
    cleanup = CleanupStack()
    if private is not None:
        made = private
        cleanup.push(f"remove {private.path}", lambda: private_dir.remove(made))
    pool = AgentPool()
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    cells: list[Cell] = []
    cleaned: list[str] = []
    peer_info: dict[str, Any] | None = None
    leader: Leader | None = None
    try:
        if private is not None:
            cleaned, _ = private_dir.clean_stale(base_fd)
            for name in cleaned:
                _say(f"removed stale {base / name} left by a killed check")
        if readonly:
            scratch = Path(tempfile.mkdtemp(prefix="prober-check-"))  # outside PATH
            cleanup.push(f"remove {scratch}", lambda: shutil.rmtree(scratch, ignore_errors=True))
            to_run = rows.readonly_rows(catalogue, base)
            runnable, skipped = rows.local_rows(catalogue)
            ran = {e.id for e in to_run}
            for exp in runnable:
                if exp.id not in ran:
                    skipped[exp.id] = (
                        "read-only mount: no file can be created in PATH (only shared locks "
                        "on PATH itself ran)"
                    )
            target = PreparedTarget("check", scratch, fp)
        else:
            assert private is not None
            to_run, skipped = rows.local_rows(catalogue)
            target = PreparedTarget("check", private.path, fp)
        pool.warm("client1", WARM_AGENTS)
        if os.geteuid() == 0 and not readonly:  # rows marked unprivileged run as nobody
            pool.warm("client1:unprivileged", 2)
        from prober.engine.scheduler import Runner

        runner = Runner(pool, cleanup, step_timeout)
        join_deadline = 0.0
        if peer and private is not None:
            leader = Leader(private.fd, private.path)
            cleanup.push("stop the rendezvous", leader.close)
            join_deadline = time.monotonic() + peer_timeout
            _say(
                "waiting for a peer; on the second machine run:\n"
                f"  prober check PATH --join {leader.token()}\n"
                f"(PATH: where that machine sees {base}; this side waits {peer_timeout:g} s)"
            )
        for exp in to_run:
            cells.append(runner.run(exp, target))
        if leader is not None and private is not None:
            joined = leader.wait_for_join(join_deadline)
            _say(f"peer {joined.host} joined; running the cross-host rows")
            peer_info = {
                "host": joined.host,
                "kernel": joined.fingerprint.get("kernel"),
                "same_kernel": joined.same_kernel,
                "fingerprint": joined.fingerprint,
            }
            two = leader.pool()
            target2 = PreparedTarget("check", private.path, fp, hosts=rows.TWO_HOSTS, pool=two)
            try:
                for exp in rows.cross_host_rows(catalogue):
                    cells.append(runner.run(exp, target2))
            finally:
                two.close()
            if leader.peer_gone():
                raise ProberError("the peer stopped answering during the cross-host rows")
        problems: list[str] = []
        if private is not None:
            private.verify()
            # The experiments' files go now, before the report: a failure is then part of
            # the report both sides print (after the hand-over only peer/ is left to remove).
            try:
                private_dir.clear(private, keep=PEER_DIR)
            except (OSError, ProberError) as exc:
                problems.append(f"removing the experiments' files from {private.path}: {exc}")
        by_id = {c.experiment: c for c in cells}
        judged = [guarantees.judge(g, by_id) for g in required]
        answers = [
            profiles.answer(p, by_id, leader is not None, local_only_options(fp))
            for p in chosen_profiles
        ]
        report = build(
            path=str(base),
            private_name=private.name if private is not None else None,
            fingerprint=fp,
            readonly=readonly,
            cells=cells,
            skipped=skipped,
            judged=judged,
            answers=answers,
            advice=advise(by_id, fp),
            peer=peer_info,
            wall_time_s=time.monotonic() - started,
            cleaned=cleaned,
            problems=problems,
        )
        if leader is not None and not leader.finish(report):
            _say("the peer did not confirm it received the report")
    finally:
        pool.close()
        failures = cleanup.run_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    emit(report)  # what was measured is printed even when the last cleanup step failed
    if failures:
        raise ProberError(f"cleanup failed: {failures[0]}")
    return int(report["exit_code"])


def _join(
    base_fd: int,
    base: Path,
    token: tuple[str, str],
    peer_timeout: float,
    emit: Any,
    node: str | None = None,
) -> int:
    name, nonce = token
    deadline = time.monotonic() + peer_timeout
    while True:  # a network filesystem may show the new directory a little later
        try:
            joiner = Joiner(base_fd, base, name, nonce, node)
            break
        except FileNotFoundError as exc:
            if time.monotonic() > deadline:
                raise ProberError(
                    f"no check is waiting in {base} for this token ({exc.strerror}); is "
                    f"{base} the same storage the --peer side checks, and is it running?"
                ) from None
            time.sleep(JOIN_RETRY_S)
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        joiner.join(_fingerprint(base))
        _say(f"joined the check of {joiner.offer.get('host')}; relaying its cross-host rows")
        report = joiner.serve()
    finally:
        joiner.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    emit(report)
    return int(report["exit_code"])
