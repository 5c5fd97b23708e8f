"""The third-party Python packages a lab client needs to run prober itself (`prober check`
in two containers, the agent with smbprotocol), copied from the interpreter prober runs with:
lab containers may not reach PyPI, and copying what runs here keeps both sides the same.

The list is not written by hand: a child interpreter runs prober's CLI (`list`, `--help` of
every command) and imports the agent's modules, and whatever it loaded from site-packages
is what the client gets. Packages the client image installs from Debian are left out.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from prober.errors import ProberError

# Compiled against Debian's OpenSSL/libffi: the client image installs python3-cryptography.
FROM_DEBIAN = frozenset({"cryptography", "cffi", "_cffi_backend", "pycparser"})
_NOT_PACKAGES = ("__editable__", "_distutils_hack", "prober")
PROBE_TIMEOUT_S = 60.0
# The client image's interpreter (Debian bookworm's python3); compiled modules copied from
# here only load in the same CPython minor version.
CLIENT_PYTHON = (3, 11)

_PROBE = """
import contextlib, importlib, io, json, sys
from prober.cli import main
for args in (["list"], ["--help"], ["run", "--help"], ["check", "--help"],
             ["report", "--help"], ["diff", "--help"]):
    sys.argv = ["prober", *args]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main()
for name in ("prober.agent", "prober.commands.check", "rich.progress", "tabulate", "yaml",
             # what prober.apis.smb2 imports when it first talks SMB
             "smbprotocol.connection", "smbprotocol.session", "smbprotocol.tree",
             "smbprotocol.open", "smbprotocol.file_info"):
    importlib.import_module(name)
with contextlib.suppress(ImportError):  # prober[fleet], for `prober check --hosts`
    importlib.import_module("ClusterShell.Task")
found = {}
for name, module in sys.modules.items():
    path = getattr(module, "__file__", None) or ""
    if "." not in name and ("site-packages" in path or "dist-packages" in path):
        found[name] = path
print(json.dumps(found))
"""


@functools.cache
def runtime_modules() -> tuple[tuple[str, Path], ...]:
    """(top-level name, file or package directory) of every third-party module prober's
    CLI and agent load in this interpreter, sorted by name."""
    if sys.version_info[:2] != CLIENT_PYTHON:
        found_here = ".".join(map(str, sys.version_info[:2]))
        raise ProberError(
            f"the lab client runs Python {'.'.join(map(str, CLIENT_PYTHON))} and gets prober's "
            f"packages (some compiled) from this interpreter, which is Python {found_here}; "
            "run the lab from a Python 3.11 environment"
        )
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProberError(
            f"listing prober's Python dependencies took over {PROBE_TIMEOUT_S:.0f} s"
        ) from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ProberError(f"listing prober's Python dependencies failed: {tail}")
    found: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    out = []
    for name, file in sorted(found.items()):
        if name in FROM_DEBIAN or name.startswith(_NOT_PACKAGES):
            continue
        path = Path(file)
        out.append((name, path.parent if path.name == "__init__.py" else path))
    return tuple(out)
