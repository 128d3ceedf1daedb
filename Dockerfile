# marketlake: one image for every process of the production topology (deploy/README.md):
#   code server  dagster api grpc -h 0.0.0.0 -p 3030 -m orchestration.definitions  (the default)
#   webserver    dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml
#   daemon       dagster-daemon run -w workspace.yaml
#   run workers  started by the K8sRunLauncher with this image (`dagster api execute_run`)
#   stream       marketlake stream BTCUSDT ETHUSDT --name binance-0
# The instance is $DAGSTER_HOME/dagster.yaml (deploy/dagster.yaml here; the Helm chart mounts
# its own), secrets come from the environment only. Checked statically by
# tests/deploy/test_dockerfile.py.

# --- build: the locked environment, then the project, into /opt/marketlake/venv -------------------
FROM python:3.11-slim-bookworm AS build

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

# Bytecode compiled at install: every process of the image imports Dagster and Great
# Expectations, and would otherwise compile them at each start (the root filesystem may be
# read-only). `copy`: the cache mount is another filesystem. The base image's Python only.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/marketlake/venv

WORKDIR /src

# The dependencies alone first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --group k8s --no-install-project

# Then the project itself, installed as a package (not editable: /src stays behind).
COPY marketlake ./marketlake
COPY assets ./assets
COPY streaming ./streaming
COPY dbt_like_sql ./dbt_like_sql
COPY orchestration ./orchestration
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --group k8s --no-editable

# --- runtime: the environment, the instance config, an unprivileged user ------------------------
FROM python:3.11-slim-bookworm

RUN groupadd --system --gid 10001 marketlake \
    && useradd --system --uid 10001 --gid marketlake --home-dir /opt/marketlake \
       --shell /usr/sbin/nologin marketlake \
    && mkdir -p /opt/dagster/dagster_home \
    && chown marketlake:marketlake /opt/dagster/dagster_home

COPY --from=build /opt/marketlake/venv /opt/marketlake/venv
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml

ENV PATH=/opt/marketlake/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    PYTHONUNBUFFERED=1 \
    GX_ANALYTICS_ENABLED=false

USER 10001:10001
WORKDIR /opt/marketlake

# 3030: the code server (gRPC); 3000: the webserver.
EXPOSE 3030 3000

CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "orchestration.definitions"]
