"""Bounded reading of the JSON a run keeps, and the field checks every saved file shares.

:func:`read_json` reads one JSON document from a regular file with a size cap, UTF-8
checked and nesting at most ``MAX_DEPTH`` deep. :class:`Fields` checks a decoded value
field by field, and every failure is one line of the file kind's error class naming the
file, the field, what was found and what to do::

    runs/a/model.npz: meta.num_classes is 0, not a whole number >= 1; retrain, or use another ...

The run folder's own files are read where they are written: config.json by
:func:`numpy_mlp.training.config.read_config`, metrics.json by
:func:`numpy_mlp.runs.report.read_metrics`.
"""

from __future__ import annotations

import json
import math
import os

from ..errors import RunFileError, printable
from .regular import open_regular

MAX_BYTES = 1 << 20  # config.json, metrics.json and run.json are a few KB
MAX_DEPTH = 16       # none of them nests more than three levels
SHOWN_CHARS = 60     # how much of a wrong value a message repeats



def read_regular_bytes(path, *, limit, error, fix, follow_links=True, what=""):
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A folder, a FIFO or a device is refused (a FIFO would block the read for ever), and
    with ``follow_links=False`` so is a symbolic link. Raises ``error`` naming the file
    (after ``what``, "config file", where given).
    """
    name = f"{what} {printable(path)}" if what else printable(path)
    with open_regular(path, error=error, fix=fix, what=what, follow_links=follow_links) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise error(f"{name} is {size:,} bytes, more than the {limit:,} such a file can "
                        f"hold; {fix}")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise error(f"{name} cannot be read ({e.strerror}); {fix}") from None
    if len(data) > limit:  # it grew while being read
        raise error(f"{name} is larger than the {limit:,} bytes such a file can hold; {fix}")
    return data


def parse_json(text, *, where, error, fix):
    """Decode the JSON ``text`` (str) read from ``where``; nesting beyond MAX_DEPTH is refused."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
        deep = True
    except ValueError as e:
        raise error(f"{where} is not valid JSON ({e}); {fix}") from None
    else:
        deep = _depth_exceeds(value, MAX_DEPTH)
    if deep:
        raise error(f"{where} nests deeper than {MAX_DEPTH} levels, which no file numpy-mlp writes "
                    f"does; {fix}")
    return value


def read_json(path, *, error=RunFileError, fix, limit=MAX_BYTES, follow_links=True):
    """The JSON document in file ``path``: bounded in size and depth, UTF-8 checked."""
    data = read_regular_bytes(path, limit=limit, error=error, fix=fix, follow_links=follow_links)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{printable(path)} is not UTF-8 text; {fix}") from None
    return parse_json(text, where=printable(path), error=error, fix=fix)


def _depth_exceeds(value, limit):
    """Whether lists and dicts in ``value`` nest more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (list, dict)):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return False


class Fields:
    """Field-by-field checks of one decoded file; each failure raises one line of ``error``.

    Args:
        where: the file, as the message names it.
        error: the file kind's error class (ModelFileError, CheckpointError, RunFileError).
        fix: what the user can do, the end of every message.
    """

    def __init__(self, where, error, fix):
        self.where, self.error, self.fix = printable(where), error, fix

    def __repr__(self):
        return f"Fields({self.where!r}, {self.error.__name__})"

    def fail(self, field, value, expected):
        """Raise: ``<file>: <field> is <value>, <expected>; <fix>``."""
        text = repr(value)
        if len(text) > SHOWN_CHARS:
            text = text[:SHOWN_CHARS] + "..."
        raise self.error(f"{self.where}: {field} is {text}, {expected}; {self.fix}")

    def missing(self, field):
        raise self.error(f"{self.where}: {field} is missing; {self.fix}")

    def get(self, mapping, key, field):
        """``mapping[key]``, or a one-line error naming ``field`` if it is absent."""
        if key not in mapping:
            self.missing(field)
        return mapping[key]

    def mapping(self, value, field, keys=None):
        """``value`` if it is a dict (with string keys, and every one of ``keys``)."""
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            self.fail(field, value, "not a table of named fields")
        for k in keys or ():
            self.get(value, k, f"{field}.{k}")
        return value

    def integer(self, value, field, low=0, high=None):
        """``value`` if it is a whole number (not a bool) in ``low..high``."""
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
                high is not None and value > high):
            limits = f">= {low}" if high is None else f"in {low}..{high}"
            self.fail(field, value, f"not a whole number {limits}")
        return value

    def number(self, value, field, *, low=None, finite=True):
        """``value`` as a float if it is a number (not a bool), finite unless ``finite=False``,
        and at least ``low`` where given (NaN passes only with ``finite=False``)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, value, "not a number")
        value = float(value)
        if finite and not math.isfinite(value):
            self.fail(field, value, "not a finite number")
        if low is not None and value < low:
            self.fail(field, value, f"less than {low}")
        return value

    def text(self, value, field, max_chars=None):
        if not isinstance(value, str) or (max_chars is not None and len(value) > max_chars):
            longest = f" of at most {max_chars} characters" if max_chars else ""
            self.fail(field, value, f"not a text{longest}")
        return value

    def choice(self, value, field, choices):
        if not isinstance(value, str) or value not in choices:
            self.fail(field, value, f"not one of {', '.join(choices)}")
        return value

    def list_of(self, value, field, check, *, length=None, max_length=None):
        """``[check(item, field[i]) ...]`` for a list ``value`` (of ``length`` items if given)."""
        if not isinstance(value, list):
            self.fail(field, value, "not a list")
        if length is not None and len(value) != length:
            self.fail(field, value, f"a list of {len(value)} items, expected {length}")
        if max_length is not None and len(value) > max_length:
            self.fail(field, f"<{len(value)} items>", f"more than the {max_length} allowed")
        return [check(v, f"{field}[{i}]") for i, v in enumerate(value)]


    def format_of(self, table, field, *, expected, newest, kind, then):
        """The format version of ``table`` (a saved file's header): its ``format`` must be
        ``expected``, its ``format_version`` at most ``newest``; ``kind`` names the file kind
        ("numpy-mlp model"), ``then`` what upgrading numpy-mlp lets the user do."""
        if table["format"] != expected:
            self.fail(f"{field}.format", table["format"], f"not {expected!r}: this is not a "
                                                         f"{kind}")
        version = self.integer(table["format_version"], f"{field}.format_version", low=1)
        if version > newest:
            raise self.error(f"{self.where} has {kind.split()[-1]} format version {version}, "
                             f"newer than this numpy-mlp reads ({newest}); upgrade numpy-mlp to "
                             f"{then}")
        return version
