"""Command-line options generated from config dataclasses (cleanrl's ``Args``, without tyro).

One option per field, nested dataclasses included:

- flag: ``--<field>`` for a top-level field, ``--<part>-<field>`` for a field of a nested part
  (``rl.gae_lambda`` -> ``--rl-gae-lambda``), unless the class names a shorter one in its
  ``FLAGS`` (``rl.iterations`` -> ``--rl-iters``, ``supervised.learning_rate`` -> ``--lr``);
- help: the comment after the field in the source (plus comment-only lines right below it);
- type: ``bool`` -> ``--x`` (default False) or ``--x/--no-x``; ``bool | None`` -> ``--x/--no-x``
  (default None); ``Literal`` -> choices; ``tuple[T, T]`` -> two values; ``list[str]`` ->
  repeatable; ``X | None`` -> optional.

:func:`config_to_argv` is the inverse of :func:`config_from_args`: a test round-trips every
field. Values are validated by the dataclasses themselves (``__post_init__``); a
:class:`ConfigError` raised while parsing names the flag instead of the field.
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Literal

from napari_cliprl.training.config import ConfigError


@dataclass(frozen=True)
class Option:
    """One command-line option of a config field."""

    path: tuple[str, ...]  # field names from the top, e.g. ("rl", "num_envs")
    flag: str  # "--num-envs"
    kind: str  # "switch" (store_true), "toggle" (--x/--no-x), "value", "pair", "list"
    type: type  # int, float or str (the values' type)
    default: Any  # the dataclass default
    help: str  # from the field's comment
    choices: tuple | None = None  # the Literal's values
    required: bool = False
    metavar: Any = None

    @property
    def dest(self) -> str:
        return ".".join(self.path)


# -- reading the dataclasses --------------------------------------------------------------
@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment after it (and comment-only lines right below), from source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            parts = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
            n = node.end_lineno + 1
            while n <= len(lines) and lines[n - 1].lstrip().startswith("#"):
                parts.append(comments[n])
                n += 1
            out[node.target.id] = " ".join(parts)
    return out


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def config_options(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[Option]:
    """Every option of ``cls`` in field order, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    flags = getattr(cls, "FLAGS", {})
    required = getattr(cls, "REQUIRED", ())
    metavars = getattr(cls, "METAVARS", {})
    for f in fields(cls):
        hint, optional = _unwrap_optional(hints[f.name])
        path = (*prefix, f.name)
        if is_dataclass(hint):
            yield from config_options(hint, path)
            continue
        flag = flags.get(f.name) or "--" + "-".join(path).replace("_", "-")
        kind, value_type, choices = _kind(hint, optional, _default(f), path)
        yield Option(
            path,
            flag,
            kind,
            value_type,
            _default(f),
            comments.get(f.name, ""),
            choices,
            f.name in required,
            metavars.get(f.name),
        )


def _kind(hint: Any, optional: bool, default: Any, path: tuple) -> tuple[str, type, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return ("toggle" if optional or default is True else "switch"), bool, None
    if origin is Literal:
        return "value", type(args[0]), args
    if origin is tuple and len(args) == 2 and args[0] is args[1]:
        return "pair", args[0], None
    if origin is list and args == (str,):
        return "list", str, None
    if hint in (int, float, str):
        assert not optional or default is None, f"{path}: optional with a non-None default"
        return "value", hint, None
    raise TypeError(f"{'.'.join(path)}: no command-line form for {hint!r}")


# -- argparse ------------------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of ``cls`` (nested parts in their own help groups)."""
    groups: dict[str, Any] = {}
    for opt in config_options(cls):
        target: Any = parser
        if len(opt.path) > 1:
            part = opt.path[0]
            if part not in groups:
                doc = inspect.getdoc(typing.get_type_hints(cls)[part]) or part
                groups[part] = parser.add_argument_group(doc.splitlines()[0].rstrip("."))
            target = groups[part]
        target.add_argument(opt.flag, **_argparse_kwargs(opt))


def _argparse_kwargs(opt: Option) -> dict[str, Any]:
    hidden = opt.default is None or opt.default is False or opt.default == []
    shown = not (hidden or opt.required or opt.kind == "toggle")
    text = opt.help + (f" (default {_show(opt.default)})" if shown else "")
    if opt.kind == "toggle" and opt.default is not None:
        text += f" (default {'on' if opt.default else 'off'})"
    kw: dict[str, Any] = {"dest": opt.dest, "help": text.replace("%", "%%")}
    if opt.kind == "switch":
        return {**kw, "action": "store_true"}
    if opt.kind == "toggle":
        return {**kw, "action": argparse.BooleanOptionalAction, "default": opt.default}
    kw.update(type=opt.type, metavar=opt.metavar or opt.path[-1].upper())
    if opt.choices:
        kw.update(choices=opt.choices, metavar=opt.metavar or "{" + ",".join(opt.choices) + "}")
    if opt.kind == "pair":
        kw.update(nargs=2, metavar=opt.metavar or ("LOW", "HIGH"))
    if opt.kind == "list":
        return {**kw, "action": "append", "required": opt.required, "default": None}
    if opt.required:
        return {**kw, "required": True}
    return {**kw, "default": opt.default}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(_show(v) for v in value)
    return str(value)


def config_from_args(args: argparse.Namespace, cls: type) -> Any:
    """The ``cls`` instance the parsed options describe (validated by the dataclasses)."""
    return _build(cls, vars(args), ())


def _build(cls: type, values: dict[str, Any], prefix: tuple[str, ...]) -> Any:
    hints = typing.get_type_hints(cls)
    own = [opt for opt in config_options(cls, prefix) if len(opt.path) == len(prefix) + 1]
    flags = {opt.path[-1]: opt.flag for opt in own}
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        hint, _ = _unwrap_optional(hints[f.name])
        path = (*prefix, f.name)
        if is_dataclass(hint):
            kwargs[f.name] = _build(hint, values, path)
            continue
        value = values[".".join(path)]
        if isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[f.name] = [] if value is None and typing.get_origin(hint) is list else value
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(flags.get(e.option, e.option), e.problem) from None


def parse_config(argv: Sequence[str], cls: type) -> Any:
    """Parse ``argv`` (options only) into a ``cls``: the command line's own parser."""
    parser = argparse.ArgumentParser(prog=cls.__name__, add_help=False)
    add_config_arguments(parser, cls)
    return config_from_args(parser.parse_args(list(argv)), cls)


# -- back to a command line ----------------------------------------------------------------
def config_to_argv(config: Any) -> list[str]:
    """Options that reproduce ``config`` (required ones, then every non-default field)."""
    argv: list[str] = []
    for opt in config_options(type(config)):
        value = config
        for name in opt.path:
            value = getattr(value, name)
        if not opt.required and value == opt.default:
            continue
        argv += _option_argv(opt, value)
    return argv


def _option_argv(opt: Option, value: Any) -> list[str]:
    if opt.kind == "switch":
        return [opt.flag] if value else []
    if opt.kind == "toggle":
        return [opt.flag if value else "--no-" + opt.flag[2:]]
    if value is None:
        raise ValueError(f"{opt.flag}: None has no command-line form (default {opt.default!r})")
    if opt.kind == "pair":
        return [opt.flag, *(_text(v) for v in value)]
    if opt.kind == "list":
        return [part for item in value for part in _single(opt.flag, item)]
    return _single(opt.flag, value)


def _single(flag: str, value: Any) -> list[str]:
    text = _text(value)
    return [f"{flag}={text}"] if text.startswith("-") and isinstance(value, str) else [flag, text]


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
