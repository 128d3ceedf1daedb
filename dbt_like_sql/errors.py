"""The engine's exceptions: every one names the file (and the ref, model or test) at fault.

A parse error should be fixable from its message alone, without a stack trace: the lead sees
these in the Dagster UI when definitions fail to load, or in a failed run's log.
"""

from __future__ import annotations

from pathlib import Path


class DbtLikeError(Exception):
    """Base of everything the engine raises on purpose."""


class ProjectError(DbtLikeError, ValueError):
    """The models directory is not a valid project; raised by `parse_project`."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")


class UnknownRefError(ProjectError):
    """`ref('x')` names neither a model nor a declared source table."""

    def __init__(self, path: Path | str, ref: str, known: list[str]) -> None:
        self.ref = ref
        super().__init__(
            path, f"unknown ref {ref!r}: not a model and not a source ({', '.join(known)})"
        )


class DuplicateModelError(ProjectError):
    """Two model files (or a model and a source) share one name, hence one lake table."""

    def __init__(self, path: Path | str, name: str, other: Path | str) -> None:
        self.name = name
        self.other = Path(other)
        super().__init__(path, f"duplicate model name {name!r}, also defined in {other}")


class CycleError(ProjectError):
    """Models that depend on each other in a loop; `cycle` lists it, first name repeated."""

    def __init__(self, path: Path | str, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(path, f"ref cycle: {' -> '.join(cycle)}")


class PartitionError(DbtLikeError, ValueError):
    """A partition value that is not a valid exchange, symbol or day; refused before any SQL."""


class ModelError(DbtLikeError, RuntimeError):
    """A model failed to run (SQL error, missing upstream table, rows outside the partition)."""

    def __init__(self, model: str, path: Path | str, message: str) -> None:
        self.model = model
        self.path = Path(path)
        super().__init__(f"model {model!r} ({self.path}): {message}")
