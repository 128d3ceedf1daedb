"""The manifest: what `parse_project` knows about a project, and the ref graph over it.

It is plain data (no Polars, no lake, no Dagster), so the orchestration layer can build
one asset per model, its deps and its checks from it while definitions load, and the
executor can run a model from it without parsing anything again.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

#: Every model is per (exchange, symbol, UTC day) for now; `partition_by` picks a subset
#: of these for the physical layout, but a run always replaces exactly one such partition.
PARTITION_KEYS: Final = ("exchange", "symbol", "date")

Severity = Literal["error", "warn"]


@dataclass(frozen=True)
class TestSpec:
    """One data test from a properties file, ready to evaluate and to map to an asset check.

    `name` is unique within its model and made of `[A-Za-z0-9_]` only, so it can be used
    as a Dagster check name as is (`not_null_minute`, `accepted_range_vwap`, ...).
    """

    __test__ = False  # not a pytest class, despite the name

    name: str
    test: str
    column: str | None
    kwargs: Mapping[str, Any]
    severity: Severity = "error"


@dataclass(frozen=True)
class Column:
    name: str
    description: str = ""
    tests: tuple[TestSpec, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """dbt's `config(...)`: from the SQL file's header, else the properties file."""

    materialized: str = "partitioned"
    partition_by: tuple[str, ...] = PARTITION_KEYS
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """One `models/<name>.sql`, its properties and its compiled SQL.

    `compiled_sql` does not depend on the partition: partition values are bound as data
    (a one-row `__partition` table), never pasted into the text, so the SQL is compiled
    once at parse time and is the same for every run.
    """

    name: str
    path: Path
    raw_sql: str
    compiled_sql: str
    refs: tuple[str, ...]
    config: ModelConfig = ModelConfig()
    description: str = ""
    columns: Mapping[str, Column] = field(default_factory=dict)
    tests: tuple[TestSpec, ...] = ()
    """Every test of the model: column tests first (in column order), then model-level."""


@dataclass(frozen=True)
class Source:
    """A lake table that models may `ref` (or `source`) but that no model builds."""

    name: str
    source_name: str = ""
    description: str = ""
    columns: Mapping[str, Column] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Models (in dependency order), sources, and graph queries over them."""

    models: Mapping[str, Model]
    sources: Mapping[str, Source]

    @property
    def order(self) -> tuple[str, ...]:
        """Model names, every model after all the models it refs."""
        return tuple(self.models)

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"no model named {name!r}; models: {', '.join(self.models)}") from None

    def parents(self, name: str) -> tuple[str, ...]:
        """Everything `name` refs: models and source tables (the asset's deps)."""
        return self.model(name).refs

    def model_parents(self, name: str) -> tuple[str, ...]:
        return tuple(ref for ref in self.model(name).refs if ref in self.models)

    def source_parents(self, name: str) -> tuple[str, ...]:
        return tuple(ref for ref in self.model(name).refs if ref not in self.models)

    def children(self, name: str) -> tuple[str, ...]:
        self.model(name)
        return tuple(other for other, model in self.models.items() if name in model.refs)

    def select(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        """The chosen models (all when None) in dependency order; unknown names raise."""
        if names is None:
            return self.order
        chosen = set(names)
        for name in chosen:
            self.model(name)
        return tuple(name for name in self.order if name in chosen)


# --- graph helpers (used by the parser) -------------------------------------------------


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Kahn's algorithm over `name -> names it depends on`; None when there is a cycle.

    Ties are broken by name so the order (and the manifest) is the same on every parse.
    """
    waiting = {name: set(parents) & deps.keys() for name, parents in deps.items()}
    children: dict[str, list[str]] = {name: [] for name in deps}
    for name, parents in waiting.items():
        for parent in parents:
            children[parent].append(name)
    ready = [name for name, parents in waiting.items() if not parents]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            waiting[child].discard(name)
            if not waiting[child]:
                heapq.heappush(ready, child)
    return order if len(order) == len(deps) else None


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """One cycle as `[a, b, ..., a]` where each name refs the next; [] when acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for parent in sorted(set(deps.get(name, ())) & deps.keys()):
            if state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            if parent not in state and (cycle := visit(parent)):
                return cycle
        path.pop()
        state[name] = 2
        return []

    for name in sorted(deps):
        if name not in state and (cycle := visit(name)):
            return cycle
    return []
