"""deploy/k8s, checked without a cluster (none is available here or in CI).

Every manifest loads; the instance the Helm values render (deploy/k8s/dagster.yaml) resolves
each of its classes, `dagster_k8s.K8sRunLauncher` included, and Dagster's own config schema
accepts each class's config; the values render that instance (the chart's templates for
the parts we set, redone here) and keep the run queue tested on PostgreSQL; each stream
shard is a `marketlake stream` command line the CLI accepts, with symbols no other shard
holds and a checkpoint of its own, which a real run on the simulator shows.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes import ConfigurableClass
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer

from marketlake.schemas import parse_symbols
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from marketlake.simulator.websocket import WsSimulator
from orchestration import cli
from orchestration.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def documents(name: str) -> list[dict]:
    return list(yaml.safe_load_all((K8S / name).read_text()))


VALUES = documents("values.yaml")[0]
INSTANCE = documents("dagster.yaml")[0]
SHARDS = [doc for doc in documents("stream.yaml") if doc["kind"] == "Deployment"]
(ENV_MAP,) = documents("marketlake-env.yaml")


def classes(instance: dict) -> dict[str, tuple[type, dict]]:
    """Each ConfigurableClass block of an instance config: its class, resolved as Dagster
    resolves it (`dagster.core.x` is `dagster._core.x`), and its config."""
    found = {}
    for key, block in instance.items():
        if isinstance(block, dict) and {"module", "class"} <= set(block):
            data = ConfigurableClassData(
                block["module"], block["class"], yaml.safe_dump(block.get("config") or {})
            )
            cls = class_from_code_pointer(data.module_name, data.class_name)
            found[key] = (cls, data.config_dict)
    return found


def test_every_file_in_deploy_k8s_loads_as_yaml():
    paths = sorted(K8S.glob("*.yaml"))
    assert {p.name for p in paths} >= {"values.yaml", "dagster.yaml", "stream.yaml"}
    for path in paths:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(doc, dict) for doc in docs), path
        for doc in docs:
            if "apiVersion" in doc:  # a Kubernetes object
                assert doc["kind"] and doc["metadata"]["name"], path


def test_the_instance_resolves_every_class_and_dagster_accepts_its_config(monkeypatch):
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-the-secret")
    instance, _ = dagster_instance_config(str(K8S), "dagster.yaml")  # the instance schema
    resolved = classes(dict(instance))
    assert resolved["run_launcher"][0] is K8sRunLauncher
    assert resolved["run_coordinator"][0] is dg.QueuedRunCoordinator
    for key, (cls, config) in resolved.items():
        assert issubclass(cls, ConfigurableClass), key
        result = process_config(cls.config_type(), config)
        assert result.success, (key, [e.message for e in result.errors or []])


def test_a_misspelt_launcher_setting_is_refused_by_the_same_check():
    launcher, config = classes(INSTANCE)["run_launcher"]
    result = process_config(launcher.config_type(), {**config, "job_namspace": "marketlake"})
    assert not result.success
    assert "job_namspace" in " ".join(e.message for e in result.errors)


def render(values: dict) -> dict:
    """The instance parts the chart renders from the values we set (its templates
    configmap-instance.yaml and helpers/instance/*.tpl), for release and namespace
    `marketlake`."""
    pg = values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg["postgresqlParams"],
        "scheme": pg["postgresqlScheme"],
    }
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    snake = {k: re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower() for k in monitoring}
    return {
        "storage": {key: {"postgres_db": postgres_db} for key in
                    ("run_storage", "event_log_storage", "schedule_storage")},
        "run_launcher": {
            "load_incluster_config": launcher["loadInclusterConfig"],
            "job_namespace": launcher.get("jobNamespace") or "marketlake",
            "image_pull_policy": launcher["imagePullPolicy"],
            "dagster_home": values["global"]["dagsterHome"],
            "postgres_password_secret": values["global"]["postgresqlSecretName"],
            "resources": launcher["resources"],
            "fail_pod_on_run_failure": launcher["failPodOnRunFailure"],
        },
        "run_coordinator": {
            "max_concurrent_runs": queue["maxConcurrentRuns"],
            "tag_concurrency_limits": queue["tagConcurrencyLimits"],
            "dequeue_interval_seconds": queue["dequeueIntervalSeconds"],
        },
        "run_monitoring": {snake[k]: v for k, v in monitoring.items()},
        "retention": {
            "sensor": {"purge_after_days": values["retention"]["sensor"]["purgeAfterDays"]},
            "schedule": {"purge_after_days": values["retention"]["schedule"]["purgeAfterDays"]},
        },
        "telemetry": values["telemetry"],
        **values["additionalInstanceConfig"],
    }  # fmt: skip


def test_the_helm_values_render_the_instance_kept_beside_them():
    rendered = render(VALUES)
    for key, expected in rendered.pop("storage").items():
        assert INSTANCE[key]["config"] == expected, key
    launcher = INSTANCE["run_launcher"]["config"]
    assert {k: launcher[k] for k in rendered["run_launcher"]} == rendered.pop("run_launcher")
    assert INSTANCE["run_coordinator"]["config"] == rendered.pop("run_coordinator")
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    for key, expected in rendered.items():
        assert INSTANCE[key] == expected, key
    logs = VALUES["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert INSTANCE["compute_logs"]["config"] == logs


def test_kubernetes_keeps_the_run_queue_monitoring_and_retention_tested_on_postgres():
    """deploy/dagster.yaml is the instance tests/deploy runs on a real PostgreSQL."""
    tested = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    shared = ("run_coordinator", "run_retries", "telemetry", "backfills", "sensors", "python_logs")
    for key in shared:
        assert INSTANCE[key] == tested[key], key
    for key, value in tested["run_monitoring"].items():
        assert INSTANCE["run_monitoring"][key] == value, key
    sensor_days = dict(INSTANCE["retention"]["sensor"]["purge_after_days"])
    sensor_days.pop("started")  # the chart requires it; -1 keeps them, as Dagster does
    assert sensor_days == tested["retention"]["sensor"]["purge_after_days"]
    assert tested["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert VALUES["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_every_part_runs_the_one_image_and_the_location_serves_the_definitions():
    (location,) = VALUES["dagster-user-deployments"]["deployments"]
    image = location["image"]
    for part in ("dagsterWebserver", "dagsterDaemon"):
        assert VALUES[part]["image"] == image, part
    for shard in SHARDS:
        (container,) = shard["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{image['repository']}:{image['tag']}"
    args = location["dagsterApiGrpcArgs"]
    assert args == ["-m", "orchestration.definitions"]
    assert importlib.util.find_spec(args[1]) is not None
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE .*\b{location['port']}\b", dockerfile, re.M)
    assert re.search(rf"^EXPOSE .*\b{VALUES['dagsterWebserver']['service']['port']}\b",
                     dockerfile, re.M)  # fmt: skip
    assert location["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {"name": ENV_MAP["metadata"]["name"]} in location["envConfigMaps"]


def test_each_shared_setting_is_one_marketlake_reads():
    data = ENV_MAP["data"]
    settings = Settings.from_env(data)
    assert settings.lake.startswith("s3://")
    for name in data:  # each one changes what marketlake does
        assert Settings.from_env({k: v for k, v in data.items() if k != name}) != settings, name


def test_each_stream_shard_is_one_marketlake_stream_with_its_own_symbols_and_name():
    held: dict[tuple[str, str], str] = {}
    names = set()
    for shard in SHARDS:
        spec = shard["spec"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == ["marketlake", "stream"]
        args = cli._parser().parse_args(["stream", *container["args"]])  # as the CLI parses
        assert args.name and args.name not in names, shard["metadata"]["name"]
        names.add(args.name)
        for symbol in parse_symbols(args.symbols, args.exchange):
            owner = held.setdefault((args.exchange, symbol), args.name)
            assert owner == args.name, f"{symbol} is in shards {owner} and {args.name}"
        requests = container["resources"]["requests"]
        assert requests["cpu"] and requests["memory"]
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert ENV_MAP["metadata"]["name"] in sources


def test_named_shards_of_one_exchange_keep_their_own_checkpoints(tmp_path, monkeypatch):
    """Two shards of Binance, run one after the other as `marketlake stream` on the
    simulator: each checkpoint holds its own symbols, neither overwrote the other's."""
    symbols = ("BTCUSDT", "ETHUSDT")
    config = SimConfig(trades_per_day=400_000, symbols=symbols)
    lake = tmp_path / "lake"
    with Simulator(config) as http, WsSimulator(config) as ws:
        monkeypatch.setenv("MARKETLAKE_BINANCE_REST_URL", http.base_url)
        monkeypatch.setenv("MARKETLAKE_BINANCE_WS_URL", ws.url)
        for index, symbol in enumerate(symbols):
            argv = ["stream", symbol, "--name", f"binance-{index}", "--duration", "2"]
            assert cli.main([*argv, "--lake", str(lake)]) == 0
    states = {}
    for index in range(len(symbols)):
        path = lake / "_state" / f"stream_binance-{index}.json"
        states[index] = set(yaml.safe_load(path.read_text())["symbols"])
    assert states == {0: {"BTCUSDT"}, 1: {"ETHUSDT"}}
    assert not (lake / "_state" / "stream_binance.json").exists()
    landed = pl.read_delta(str(lake / "ticks_quotes"))["symbol"].unique().sort().to_list()
    assert landed == sorted(symbols)


@pytest.mark.parametrize("name", ["binance 0", "shard/1", ""])
def test_a_stream_name_that_cannot_name_a_checkpoint_is_refused(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["stream", "BTCUSDT", "--name", name])
    assert exit_.value.code == 2
    assert "invalid stream name" in capsys.readouterr().err
