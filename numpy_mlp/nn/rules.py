"""The values an argument takes, and the one message for a value refused.

A :class:`Rule` (built with :func:`whole`, :func:`real`, :func:`choice` or the constants
BOOL, TEXT and WIDTHS) states what a setting takes; :meth:`Rule.check` normalises a value or
raises ConfigError ``{what} must be {description}``. The network's constructors check their
own arguments with rules declared beside them (``optim.ALPHA``, ``model.DROPOUT``, ...), and
:class:`~numpy_mlp.training.config.TrainConfig` declares its fields with those same rules,
so a value is refused in the same words wherever it is given.
"""

from __future__ import annotations

import contextvars
import math
import numbers
import reprlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """The values a setting takes, and the one message for a value it refuses.

    Built with :func:`whole`, :func:`real`, :func:`choice` or the constants BOOL, TEXT and
    WIDTHS. The message is ``{what} must be {describe()}``, then the setting's ``note``.
    """

    kind: str                  # "whole", "real", "choice", "bool", "text" or "widths"
    low: float | None = None   # whole, real: the bounds (None = unbounded)
    high: float | None = None
    open_low: bool = False     # real: the bound itself is excluded
    open_high: bool = False
    choices: tuple = ()        # choice: the names; whole: words taken as well, e.g. ("auto",)
    note: str = ""             # a hint of the setting's own, after the message

    def span(self):
        """The bounds alone, for ``--help``: ``1..1024``, ``[0, 1)``, ``> 0`` (else '')."""
        if self.kind == "whole":
            numbers_ = f"{self.low}..{self.high}" if self.high is not None else f">= {self.low}"
            return " or ".join([*self.choices, numbers_])
        if self.kind == "real":
            if self.high is None:
                return f"{'>' if self.open_low else '>='} {self.low:g}"
            return (f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.open_high else ']'}")
        return ""

    def describe(self):
        """What the rule takes, e.g. ``a whole number in 1..1024``."""
        if self.kind == "whole":
            words = "".join(f"{w!r} or " for w in self.choices)
            bounds = f"in {self.low}..{self.high}" if self.high is not None else f">= {self.low}"
            return f"{words}a whole number {bounds}"
        if self.kind == "real":
            return f"a finite number {'' if self.high is None else 'in '}{self.span()}"
        return {"choice": f"one of {', '.join(self.choices)}", "bool": "true or false",
                "text": "a text", "widths": "whole numbers >= 1, e.g. 1000 or 512,256"}[self.kind]

    def check(self, value, what):
        """``value`` normalised (int, float, a tuple of widths) if the rule takes it.

        Raises ConfigError ``{what} must be ...``; ``what`` shows the value as its source
        names it (``alpha=0``, ``--alpha 0``, ``FILE.toml: alpha = 0``; see :func:`shown`).
        """
        ok = _MISSING
        if self.kind == "whole":
            if isinstance(value, str) and value in self.choices:
                ok = value
            elif _integer(value) and self._within(value):
                ok = int(value)
        elif self.kind == "real":
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
                v = _float(value)
                ok = v if v is not None and self._within(v) else _MISSING
        elif self.kind == "choice":
            ok = value if isinstance(value, str) and value in self.choices else _MISSING
        elif self.kind == "bool":
            ok = bool(value) if isinstance(value, (bool, np.bool_)) else _MISSING
        elif self.kind == "text":
            ok = value if isinstance(value, str) else _MISSING
        else:
            ok = _widths(value)
        if ok is _MISSING:
            note = f"; {self.note}" if self.note else ""
            raise ConfigError(f"{what} must be {self.describe()}{note}")
        return ok

    def accepts(self, value):
        try:
            self.check(value, "")
        except ConfigError:
            return False
        return True

    def from_text(self, text):
        """The value a command-line text stands for: a number where the rule takes numbers
        (left as text if it is none, for :meth:`check` to refuse by name), else the text."""
        if self.kind in ("whole", "real", "widths") and text not in self.choices:
            for parse in (int, float) if self.kind != "widths" else (int,):
                try:
                    return parse(text)
                except ValueError:
                    pass
        return text

    def _within(self, v):
        low_ok = self.low is None or (v > self.low if self.open_low else v >= self.low)
        high_ok = self.high is None or (v < self.high if self.open_high else v <= self.high)
        return low_ok and high_ok


def whole(low, high=None, *, words=(), note=""):
    """Integers in ``low..high`` (and the texts ``words``)."""
    return Rule("whole", low, high, choices=tuple(words), note=note)


def real(low, high=None, *, open_low=False, open_high=False, note=""):
    """Finite numbers between ``low`` and ``high``; ``open_*`` leaves a bound itself out."""
    return Rule("real", low, high, open_low, open_high, note=note)


def choice(*names, note=""):
    return Rule("choice", choices=tuple(names), note=note)


BOOL, TEXT, WIDTHS = Rule("bool"), Rule("text"), Rule("widths")
_MISSING = object()
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60  # a value in a message stays short, however large


def shown(name, value, sep="="):
    """``name``, ``sep`` and a short repr of ``value``: how messages show a refused value."""
    return f"{name}{sep}{_REPR.repr(value)}"


# How the caller of the code that gives advice writes a setting: the keyword of the Python
# API and the estimator (alpha=0.001) unless a command says otherwise (spelled_as).
_SPELLING = contextvars.ContextVar("numpy_mlp_spelling", default=None)


def python_spelling(name, value):
    """``alpha=0.001``, ``preprocessing='per_channel'``, ``hidden_dim=(512, 256)``: a keyword
    argument of TrainConfig and the estimator."""
    return f"{name}={f'{value:g}' if isinstance(value, float) else repr(value)}"


def flag_spelling(name, value):
    """``--alpha 0.001``: a flag of ``numpy-mlp train`` (and evaluate, predict)."""
    return f"--{name.replace('_', '-')} {text_value(value)}"


def text_value(value):
    """A value as a command line writes it: ``0.001``, ``per_channel``, ``512,256``."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting(name, value):
    """Setting ``name`` to ``value`` as the caller writes it, for a message's advice:
    ``alpha=0.001`` from Python, ``--alpha 0.001`` from ``numpy-mlp train``, ``--set
    alpha=0.001`` from ``numpy-mlp search`` (whatever :func:`spelled_as` chose). Advice
    that names a setting goes through here, so that it is a command the caller has."""
    return (_SPELLING.get() or python_spelling)(name, value)


@contextmanager
def spelled_as(spelling):
    """Within the block, :func:`setting` writes settings with ``spelling(name, value)``."""
    token = _SPELLING.set(spelling)
    try:
        yield
    finally:
        _SPELLING.reset(token)


def _integer(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _float(v):
    """``v`` as a finite float, or None."""
    try:
        f = float(v)
    except (OverflowError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _widths(value):
    """The hidden widths as a tuple of ints >= 1, or _MISSING."""
    if isinstance(value, str):
        try:
            dims = tuple(int(t) for t in value.split(",") if t.strip())
        except ValueError:
            return _MISSING
    elif isinstance(value, (list, tuple, np.ndarray)):
        dims = tuple(value)
    else:
        dims = (value,)
    whole_ = [_integer(h) or (isinstance(h, numbers.Real) and not isinstance(h, (bool, np.bool_))
                              and _float(h) is not None and float(h).is_integer()) for h in dims]
    if not dims or not all(whole_) or any(h < 1 for h in dims):
        return _MISSING
    return tuple(int(h) for h in dims)


def parse_hidden_dims(value, what=None):
    """The hidden widths as a tuple of positive ints, from any spelling a user writes.

    ``200``, ``(512, 256)``, ``[512, 256]`` and the text ``"512,256"`` (a flag, a TOML value
    or a searched category) all give the same tuple. ConfigError names what is wrong.
    """
    return WIDTHS.check(value, what or shown("hidden_dim", value))


def check_blocks(hidden_dim, blocks):
    """A residual net (``blocks`` >= 1) keeps one width throughout: ConfigError otherwise."""
    if blocks and len(hidden_dim) != 1:
        raise ConfigError(f"blocks={blocks} needs one hidden width, not hidden_dim="
                          f"{','.join(map(str, hidden_dim))}: a residual net keeps one width H; "
                          f"give one width ({setting('hidden_dim', hidden_dim[0])}) or "
                          f"{setting('blocks', 0)}")


def check(rule, name, value):
    """``value`` normalised by ``rule``, or ConfigError naming ``name=value``."""
    return rule.check(value, shown(name, value))
