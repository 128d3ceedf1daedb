"""The lake the API tests read: see `api.lakes`."""

from __future__ import annotations

import pytest
from api.lakes import build_lake

from marketlake.lake import Lake


@pytest.fixture(scope="session")
def sim_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The shared, read-only lake (tests that write make their own)."""
    return build_lake(tmp_path_factory.mktemp("api-lake"))
