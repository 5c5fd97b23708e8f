"""The one reading of CI that every test's skip-or-fail decision uses (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import in_ci


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", " True "])
def test_ci_values(value: str) -> None:
    assert in_ci({"CI": value}) is True


@pytest.mark.parametrize("value", ["", "0", "false", "no", "nope"])
def test_not_ci_values(value: str) -> None:
    assert in_ci({"CI": value}) is False


def test_unset_is_not_ci() -> None:
    assert in_ci({}) is False
