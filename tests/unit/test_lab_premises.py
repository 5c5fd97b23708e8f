"""The lab tests' premise checks (tests/lab/premises.py) fail, naming the premise, exactly
when the fingerprint does not show it; the fingerprints are those of the published run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prober.results import load
from tests.lab import premises

PUBLISHED = load(Path(__file__).parents[2] / "reports" / "results.json")
PRINTS: dict[str, dict[str, Any]] = {t.name: dict(t.fingerprint) for t in PUBLISHED.targets}


def test_options_and_kernel_of_the_published_nfs3_fingerprint() -> None:
    fp = PRINTS["nfs3"]
    premises.lock_option("nfs3", fp, "local_lock", "none")
    premises.lock_option("nfs3", fp, "nobrl", None)
    premises.kernel_at_least("nfs3", fp, (5, 5))
    with pytest.raises(pytest.fail.Exception, match=r"nfs3: premise not met: mount option"):
        premises.lock_option("nfs3", fp, "local_lock", "all")
    with pytest.raises(pytest.fail.Exception, match=r"Linux 7.0 or later .*6\.1\.0"):
        premises.kernel_at_least("nfs3", fp, (7, 0))


def test_superblocks_are_told_apart_by_device_numbers() -> None:
    two = {"client_devices": {"client1": "53", "client2": "54"}}
    one = {"client_devices": {"client1": "2049", "client2": "2049"}}
    premises.separate_superblocks("t", two)
    premises.one_superblock("t", one)
    with pytest.raises(pytest.fail.Exception, match="separate superblocks"):
        premises.separate_superblocks("t", one)
    with pytest.raises(pytest.fail.Exception, match="one superblock"):
        premises.one_superblock("t", two)
    # A fingerprint without the record (a run before it was kept) proves neither.
    without = {k: v for k, v in PRINTS["nfs3"].items() if k != "client_devices"}
    with pytest.raises(pytest.fail.Exception, match="separate superblocks"):
        premises.separate_superblocks("nfs3", without)


def test_local_filesystems() -> None:
    premises.local_filesystem("volume", PRINTS["volume"])
    with pytest.raises(pytest.fail.Exception, match="a local filesystem"):
        premises.local_filesystem("nfs3", PRINTS["nfs3"])
