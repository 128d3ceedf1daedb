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
