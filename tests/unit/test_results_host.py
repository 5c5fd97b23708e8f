"""The run's host record: what host_info writes here, and the Windows shape (no uid, no
euid), both accepted by the shipped schema and by the report views."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import pytest

from prober.report.schema import record_problems, results_problems
from prober.results import RunResults, host_info
from tests.report_helpers import render


@pytest.mark.skipif(sys.platform == "win32", reason="the POSIX host record")
def test_posix_host_record_is_unchanged() -> None:
    uname = os.uname()
    assert host_info() == {
        "hostname": socket.gethostname(),
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "uid": os.getuid(),
        "euid": os.geteuid(),
    }


# What host_info returns on Windows (platform.uname() of a Windows 11 machine): no uid keys.
WINDOWS_HOST: dict[str, Any] = {
    "hostname": "win11",
    "kernel": "Windows 10.0.22631",
    "kernel_version": "10.0.22631",
    "machine": "AMD64",
}


@pytest.mark.parametrize("host", [WINDOWS_HOST, host_info()], ids=["windows", "this-host"])
def test_host_records_pass_the_schema(host: dict[str, Any]) -> None:
    run = RunResults(started_at="2026-01-01T00:00:00+00:00", host=host)
    assert results_problems(run.to_dict()) == []
    header = run.to_dict()
    del header["targets"], header["cells"]
    assert record_problems("run", header) == []
    # Every document format shows whose run it was; CSV has one line per cell and no cells.
    for fmt in ("md", "rst", "html", "json", "yaml"):
        text = render(run, fmt)
        assert host["hostname"] in text and host["kernel"] in text, fmt
    assert render(run, "csv").strip().splitlines()[0].startswith("group,experiment,")
    assert len(render(run, "csv").strip().splitlines()) == 1
