"""Jinja for models and macros: one sandboxed environment, macro files, errors naming the file.

Macros are dbt's: `macros/*.sql` files of `{% macro name(args) %}...{% endmacro %}`
definitions, each callable by name from every model. A macro runs in the calling model's
context, so a `ref()` inside it is a dependency of that model, as in dbt. Every template is
compiled with its own path as file name, so an error raised while rendering names the file
and line at fault (the macro's, when the macro is wrong; the model's, when the model is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dbt_like_sql.errors import ProjectError


def environment() -> ImmutableSandboxedEnvironment:
    """Immutable sandbox (a template cannot reach Python internals) with strict undefineds."""
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


@dataclass(frozen=True)
class MacroFile:
    """One macros file: its compiled template and the macro names it defines."""

    path: Path
    template: jinja2.Template
    names: tuple[str, ...]


def load_macros(
    env: jinja2.Environment, macros_dir: Path | None, reserved: Iterable[str]
) -> tuple[MacroFile, ...]:
    """Parse every `*.sql` under `macros_dir` (none when None), refusing, naming the file:

    a syntax error (with its line), anything but macro definitions at the top level, a macro
    defined twice (in one file or two), or a macro named like a model function (`reserved`).
    """
    if macros_dir is None:
        return ()
    if not macros_dir.is_dir():
        raise ProjectError(macros_dir, "macros directory not found")
    taken = {name: Path("the model context") for name in [*reserved, *env.globals]}
    files = []
    for path in sorted(macros_dir.rglob("*.sql")):
        source = path.read_text(encoding="utf-8")
        tree = _parse(env, path, source)
        body = tree.body
        names = []
        for node in body:
            if isinstance(node, nodes.Macro):
                if node.name in taken:
                    raise ProjectError(
                        path,
                        f"line {node.lineno}: macro {node.name!r} is already defined "
                        f"in {taken[node.name]}",
                    )
                taken[node.name] = path
                names.append(node.name)
            elif not _is_blank(node):
                raise ProjectError(
                    path,
                    f"line {node.lineno}: a macros file holds only "
                    "{% macro %} definitions (and comments)",
                )
        files.append(MacroFile(path, _compile(env, path, tree), tuple(names)))
    return tuple(files)


def render(
    env: jinja2.Environment,
    path: Path,
    source: str,
    context: Mapping[str, Any],
    macros: Iterable[MacroFile] = (),
) -> str:
    """Render the template at `path` with `context` and every macro in scope.

    Raises ProjectError naming the file (model or macro) and line where rendering failed.
    """
    template = _compile(env, path, source)
    scope: dict[str, Any] = {**env.globals, **context}
    files = tuple(macros)
    try:
        for macro_file in files:
            # shared=True: macros resolve names in `scope` when called, so they see the
            # model's ref()/config() and each other, whichever file defines them.
            module = macro_file.template.make_module(scope, shared=True)
            scope.update({name: getattr(module, name) for name in macro_file.names})
        return template.render(scope)
    except jinja2.UndefinedError as exc:
        message = exc.message or "undefined"
        if message.endswith("is undefined"):  # a name, not an attribute: likely a macro
            known = sorted(name for f in files for name in f.names)
            message += f" (macros: {', '.join(known)})" if known else " (no macros are defined)"
        raise _located(exc, path, message, files) from exc
    except jinja2.TemplateError as exc:
        raise _located(exc, path, str(exc), files) from exc


def _parse(env: jinja2.Environment, path: Path, source: str) -> nodes.Template:
    try:
        return env.parse(source, filename=str(path))
    except jinja2.TemplateSyntaxError as exc:
        raise ProjectError(path, f"line {exc.lineno}: {exc.message}") from exc


def _compile(env: jinja2.Environment, path: Path, source: str | nodes.Template) -> jinja2.Template:
    """`env.from_string`, but with the file's path, so tracebacks (hence errors) name it.

    `source` may be the already parsed template (macros files are parsed once, to check them).
    """
    try:
        code = env.compile(source, filename=str(path))
    except jinja2.TemplateSyntaxError as exc:
        raise ProjectError(path, f"line {exc.lineno}: {exc.message}") from exc
    return env.template_class.from_code(env, code, env.make_globals(None))


def _is_blank(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Output) and all(
        isinstance(child, nodes.TemplateData) and not child.data.strip() for child in node.nodes
    )


def _located(
    exc: BaseException, default: Path, message: str, macros: Iterable[MacroFile]
) -> ProjectError:
    """A ProjectError at the innermost template frame of `exc` (the model's file if none)."""
    candidates = {str(default): default} | {str(m.path): m.path for m in macros}
    where: tuple[Path, int] | None = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in candidates:
            where = (candidates[filename], tb.tb_lineno)
        tb = tb.tb_next
    if where is None:
        return ProjectError(default, f"template error: {message}")
    path, line = where
    return ProjectError(path, f"template error: line {line}: {message}")
