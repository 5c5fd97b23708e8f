"""Ship matrix/ and containers/ (top of the source tree) inside the package of a wheel.

They are data the installed tool reads (prober/resources.py finds them as
``prober/_data/matrix`` and ``prober/_data/containers``); the sdist carries them at the top
(MANIFEST.in), where a build from it finds them again. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("matrix", "containers")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # a checkout reads the tree itself
        here = Path(__file__).resolve().parent
        for name in DATA_DIRS:
            target = Path(self.build_lib) / "prober" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(
                here / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildPyWithData})
