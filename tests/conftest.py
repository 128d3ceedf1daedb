"""Fixtures shared by every layer of the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.samples import REAL_SAMPLES

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def real_samples() -> Path:
    assert REAL_SAMPLES.is_dir(), f"the real samples are missing from {REAL_SAMPLES}"
    return REAL_SAMPLES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `slow` tests first (stable otherwise): `make test` runs files on two workers, and a
    minutes-long file that starts last runs alone at the end while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
