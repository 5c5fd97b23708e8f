"""Where prober's data lives: the catalogue (matrix/) and the lab's recipes (containers/).

Both stay at the top of the source tree; a wheel carries them inside the package as
``prober/_data/matrix`` and ``prober/_data/containers`` (setup.py copies them at build time).
An installed wheel is found through importlib.resources; a checkout (editable install, or
PYTHONPATH) has no ``_data`` and reads the tree next to the package.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

# The tree a wheel carries; the names of its folders are the source tree's.
DATA_PACKAGE_DIR = "_data"
DATA_DIRS = ("matrix", "containers")


@functools.cache
def data_dir(name: str) -> Path:
    """The directory ``name`` (one of DATA_DIRS), installed or in the source tree."""
    if name not in DATA_DIRS:
        raise ValueError(f"unknown data directory {name!r}")
    packaged = resources.files("prober") / DATA_PACKAGE_DIR / name
    if packaged.is_dir():
        # Wheels are installed as plain files, so the traversable is a real path.
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def matrix_dir() -> Path:
    # PROBER_MATRIX_DIR lets a test point a child prober at a catalogue of its own.
    override = os.environ.get("PROBER_MATRIX_DIR")
    return Path(override) if override else data_dir("matrix")


def containers_dir() -> Path:
    return data_dir("containers")
