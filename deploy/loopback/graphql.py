"""The webserver's GraphQL API, as the UI calls it: launch, watch and terminate.

Only what the rehearsal, the benchmarks and the end-to-end tests need: a backfill launched as
the UI's "Launch backfill" dialog does, a job run launched as the Launchpad does, Terminate,
and the status of each. The one home of the project's GraphQL client and of these queries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

#: The code location the topology's code server serves (workspace.yaml's location_name).
LOCATION = "marketlake"
#: What Dagster names the repository of a `Definitions` object.
REPOSITORY = "__repository__"

#: The mutation the UI's "Launch backfill" dialog sends (instance/backfill/BackfillUtils.tsx),
#: trimmed to the outcomes our assets can produce.
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status numPartitions timestamp endTimestamp
      runs(limit: 1000) { runId status creationTime startTime endTime tags { key value } }
    }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

TERMINATE = """
mutation Terminate($runIds: [String!]!) {
  terminateRuns(runIds: $runIds) {
    __typename
    ... on TerminateRunsResult {
      terminateRunResults {
        __typename
        ... on TerminateRunSuccess { run { runId } }
        ... on Error { message }
      }
    }
    ... on PythonError { message }
  }
}
"""

RUN = """
query Run($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run {
      runId status startTime endTime
      stepStats { stepKey status }
      eventConnection(limit: 1000) {
        events {
          __typename
          ... on MaterializationEvent {
            assetKey { path }
            metadataEntries {
              label
              ... on TextMetadataEntry { text }
              ... on IntMetadataEntry { intValue }
            }
          }
          ... on ExecutionStepFailureEvent { stepKey error { message } }
        }
      }
    }
    ... on Error { message }
  }
}
"""

LOCATIONS = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

DAEMONS = """
query Daemons {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""

SYMBOLS = """
query Symbols($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { partitionKeysByDimension(startIdx: 0, endIdx: 1) { name partitionKeys } }
  }
}
"""

#: Run states after which a run does nothing more.
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
#: Backfill states after which the daemon does nothing more with it.
BACKFILL_FINISHED = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")


class GraphQLError(RuntimeError):
    """The webserver answered with errors, or refused what was asked."""


class Webserver:
    """A client of one webserver's GraphQL endpoint."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=timeout)

    def __call__(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors from {self.url}: {body['errors']}")
        return body["data"]

    def close(self) -> None:
        self.client.close()

    # --- what the UI does -----------------------------------------------------------------

    def launch_backfill(self, asset: str, partitions: Sequence[str]) -> str:
        """Launch a backfill of `partitions` of `asset`; its id."""
        params = {"assetSelection": [{"path": [asset]}], "partitionNames": list(partitions)}
        launched = self(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill of {asset} refused: {launched}")
        return launched["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        result = self(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"backfill {backfill_id}: {result}")
        return result

    def launch_run(
        self, job: str, run_config: Mapping[str, Any], tags: Mapping[str, str] | None = None
    ) -> str:
        """Launch `job` with `run_config` as the Launchpad does (queued); its run id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            "runConfigData": dict(run_config),
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        launched = self(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"run of {job} refused: {launched}")
        return launched["run"]["runId"]

    def terminate(self, run_id: str) -> None:
        """The run page's Terminate button."""
        result = self(TERMINATE, {"runIds": [run_id]})["terminateRuns"]
        outcomes = result.get("terminateRunResults") or [result]
        if any(outcome["__typename"] != "TerminateRunSuccess" for outcome in outcomes):
            raise GraphQLError(f"terminating {run_id} failed: {result}")

    def run(self, run_id: str) -> dict:
        result = self(RUN, {"id": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise GraphQLError(f"run {run_id}: {result}")
        return result

    def locations(self) -> list[dict]:
        workspace = self(LOCATIONS)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise GraphQLError(f"workspace: {workspace}")
        return workspace["locationEntries"]

    def unhealthy_daemons(self) -> list[str]:
        statuses = self(DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return [s["daemonType"] for s in statuses if s["required"] and not s["healthy"]]

    def instruments(self, asset: str = "trades_history") -> list[str]:
        """The `instruments` partitions of `asset`, `binance:BTCUSDT` (symbols_sensor adds
        them)."""
        node = self(SYMBOLS, {"key": {"path": [asset]}})["assetNodeOrError"]
        dimensions = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
        return dimensions.get("instrument", [])

    # --- waiting --------------------------------------------------------------------------

    def wait_for_backfill(self, backfill_id: str, timeout: float = 600) -> dict:
        return _poll(
            lambda: self.backfill(backfill_id),
            lambda b: b["status"] in BACKFILL_FINISHED,
            timeout,
            f"backfill {backfill_id} to finish",
        )

    def wait_for_run(self, run_id: str, timeout: float = 300) -> dict:
        return _poll(
            lambda: self.run(run_id),
            lambda r: r["status"] in FINISHED,
            timeout,
            f"run {run_id} to finish",
        )


def _poll(fetch, done, timeout: float, what: str, every_s: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}: {value}")
        time.sleep(every_s)
