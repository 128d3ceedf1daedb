"""Fixtures shared by every layer of the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

#: The real exchange data beside the checkout (see its PROVENANCE.md).
REAL_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "real-samples"


@pytest.fixture(scope="session")
def real_samples() -> Path:
    assert REAL_SAMPLES.is_dir(), f"the real samples are expected at {REAL_SAMPLES}"
    return REAL_SAMPLES
