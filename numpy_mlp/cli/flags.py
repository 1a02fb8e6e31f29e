"""Command-line flags and ``--config`` TOML keys, both derived from declared Settings.

A command's options are a tuple of :class:`~numpy_mlp.training.config.Setting` (the fields of
TrainConfig are ``config.SETTINGS``). :func:`add_flags` makes their argparse flags, with
help lines that state each one's bounds and real default; every argparse default is None
("not given"), and argparse only converts a flag's text, never judges it. :func:`fill`
then checks each value given (the one message of its rule, naming the flag), lays it over
the values of :func:`read_flag_file` and the declared defaults, and completes the
namespace. Nothing here reads argparse's internals.
"""

from __future__ import annotations

import argparse
import difflib

from ..errors import ConfigError, UserError
from ..files.tomlfile import read_toml
from ..nn.rules import parse_hidden_dims, shown
from ..training.config import SETTINGS, layered


def _is_field(setting):
    """Whether ``setting`` is a TrainConfig field (and not another option of that name)."""
    return SETTINGS.get(setting.name) is setting


def _default_text(value):
    """A value as --help shows it: on/off, 512,256, 0.001."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _help_line(s):
    """The --help text of ``s``: its help, bounds and real default, from its declaration."""
    parts = [s.rule.span()] if s.rule.span() else []
    if s.required:
        parts.append("required")
    elif s.default is not None and (s.rule.kind != "bool" or _is_field(s)):
        parts.append(f"default {_default_text(s.default)}")
    elif s.none:
        parts.append(f"default: {s.none}")
    return f"{s.help} ({'; '.join(parts)})" if parts else s.help


def as_flags(values):
    """TrainConfig values as the flags that give them: ``--hidden-dim 512,256 --no-flip``."""
    out = []
    for name, v in values.items():
        flag = SETTINGS[name].flag
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + flag[2:])
        else:
            out.append(f"{flag} {_default_text(v)}")
    return " ".join(out)


def option_strings(s):
    """The flags of the setting ``s`` as :func:`add_flags` makes them: ``-q``, ``--quiet``;
    ``--flip``, ``--no-flip`` for a TrainConfig bool."""
    names = [s.short, s.flag] if s.short else [s.flag]
    if s.rule.kind == "bool" and _is_field(s):
        names.append("--no-" + s.flag[2:])
    return names


def unrecognized(argv, extras, settings, flags=()):
    """The one line that says what is wrong with the first of ``extras``, the arguments of
    ``argv`` that the command's ``settings`` (and its other ``flags``) did not take.

    A misspelt flag gets the nearest real one; a second value after a flag says that a
    list is one argument, comma-separated (``--hidden-dim 512,256``).
    """
    by_flag = {name: s for s in settings for name in option_strings(s)}
    extra = extras[0]
    if extra.startswith("-"):
        name = extra.split("=", 1)[0]
        near = difflib.get_close_matches(name, [*by_flag, *flags, "--help"], n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else "the command's --help lists its flags"
        return f"unrecognized argument {name}; {hint}"
    at = next(i for i in range(len(argv)) if argv[i:i + len(extras)] == extras)
    flag, _, value = argv[at - 1].partition("=")  # --hidden-dim=512 256
    if not value:
        flag, value = (argv[at - 2] if at >= 2 else ""), argv[at - 1]
    s = by_flag.get(flag)
    if s is None or s.rule.kind == "bool":
        return f"unrecognized argument {extra!r}"
    values = [value, *(v for v in extras if not v.startswith("-"))]
    if "," in (s.metavar or ""):  # a list, such as the hidden widths
        return (f"unrecognized argument {extra!r}: {s.flag} takes its values comma-separated, "
                f"e.g. {s.flag} {','.join(values)}")
    return f"unrecognized argument {extra!r}: {s.flag} takes one value"


def add_flags(parser, settings, pairs=(), fields_title=None):
    """Add the flag of each of ``settings`` to ``parser``.

    Both names of a pair in ``pairs`` share a mutually exclusive group; TrainConfig fields
    go into a group of their own titled ``fields_title`` if it is given. A TrainConfig bool
    is ``--flip/--no-flip``; another bool is a plain switch.
    """
    fields = parser.add_argument_group(fields_title) if fields_title else parser
    either = {}
    for s in settings:
        group = fields if _is_field(s) else parser
        pair = next((pair for pair in pairs if s.name in pair), None)
        if pair is not None:
            if pair not in either:
                either[pair] = group.add_mutually_exclusive_group()
            group = either[pair]
        names = option_strings(s)[:2 if s.short else 1]
        if s.rule.kind == "bool":
            action = argparse.BooleanOptionalAction if _is_field(s) else "store_true"
            group.add_argument(*names, action=action, default=None, help=_help_line(s))
        else:
            metavar = s.metavar
            if metavar is None and s.rule.kind == "choice":
                metavar = "{" + ",".join(s.rule.choices) + "}"
            group.add_argument(*names, type=s.rule.from_text, default=None, metavar=metavar,
                               help=_help_line(s))


def given(args, settings):
    """The checked values of ``settings`` that the command line gave; UserError names the flag."""
    out = {}
    for s in settings:
        value = getattr(args, s.name, None)
        if value is not None:
            out[s.name] = s.check(value, shown(s.flag, value, " "))
    return out


def fill(args, settings, from_file=None, pairs=()):
    """Set every one of ``settings`` on ``args``: the command line > ``from_file`` > the
    default. TrainConfig fields left unset stay None (TrainConfig's own defaults apply).

    Raises UserError naming a bad value or a required setting that is missing.
    """
    values = layered(from_file or {}, given(args, settings), pairs=pairs)
    for s in settings:
        value = values.get(s.name, None if _is_field(s) else s.default)
        if s.required and value is None:
            raise UserError(f"{s.flag} is required: give {s.flag} {s.metavar}, or "
                            f"{s.name.replace('_', '-')} = ... in --config FILE.toml")
        setattr(args, s.name, value)


def read_flag_file(path, command, settings, tables=(), pairs=()):
    """The checked values that ``--config FILE.toml`` gives the options ``settings``.

    Keys are the flag names with - or _ (``hidden-dim`` or ``hidden_dim``), at the top
    level or in a ``[command]`` table, which wins (the tables of the other ``tables`` are
    left to their commands). A text is read as the command line reads the flag's text.
    An unknown key is a UserError naming the known ones; so is a pair given both.
    """
    table = read_toml(path)
    values = {k: v for k, v in table.items() if not (k in tables and isinstance(v, dict))}
    if isinstance(table.get(command), dict):
        values.update(table[command])
    known = {s.name: s for s in settings if s.name != "config"}
    out = {}
    for key, value in values.items():
        s = known.get(key.replace("-", "_"))
        if s is None:
            names = ", ".join(sorted(name.replace("_", "-") for name in known))
            raise UserError(f"{path}: unknown key {key!r} for 'numpy-mlp {command}'; "
                            f"known keys: {names}")
        text = s.rule.from_text(value) if isinstance(value, str) else value
        out[s.name] = s.check(text, shown(f"{path}: {key}", value, " = "))
    for pair in pairs:
        if all(name in out for name in pair):
            names = " and ".join(name.replace("_", "-") for name in pair)
            raise UserError(f"{path}: give one of {names}, not both")
    return out


# ------------------------------------------------------------------ search's --set and --space

def _value(text):
    """'1e-3' -> 0.001, 'true' -> True, '[1, 2]' -> [1, 2], anything else stays text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def field_value(text):
    """'FIELD=VALUE' -> {FIELD: value}; hidden_dim=512,256 gives a tuple of widths."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write FIELD=VALUE, e.g. epochs=10")
    name = name.strip()
    return {name: hidden_dims(value) if name == "hidden_dim" else _value(value.strip())}


def space_entry(text):
    """'FIELD=LOW:HIGH[:log]' -> a range; 'FIELD=A,B,C' -> a list of values."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write FIELD=LOW:HIGH, FIELD=LOW:HIGH:log "
                                         "or FIELD=A,B,C")
    parts = spec.split(":")
    if len(parts) in (2, 3) and "," not in spec:
        low, high = (_value(p) for p in parts[:2])
        if len(parts) == 3 and parts[2] != "log":
            raise argparse.ArgumentTypeError(f"{text!r}: the third part of a range can only be "
                                             "'log'")
        return {name.strip(): {"low": low, "high": high, "log": len(parts) == 3}}
    return {name.strip(): {"choices": [_value(v.strip()) for v in spec.split(",")]}}


def hidden_dims(text):
    """'1000' or '512,256' -> tuple of widths (rules.parse_hidden_dims, as an argparse type)."""
    try:
        return parse_hidden_dims(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
