"""The one TOML reader: ``--config`` files of the commands and search files.

TOML is read with the standard library's ``tomllib`` (``tomli`` on Python 3.10); every
failure becomes one :class:`~numpy_mlp.errors.UserError` line that names the file.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..errors import UserError

MAX_BYTES = 1 << 20  # a config file is a few lines; a larger one is not a config file


def read_toml(path, flag="--config"):
    """The top-level table of the TOML file ``path``, given to ``flag``.

    Raises UserError naming the file when it is missing, a folder, larger than
    MAX_BYTES, not UTF-8 or not valid TOML.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; check the path given to "
                        f"{flag}") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a folder; give a .toml file to {flag}") from None
    except OSError as e:
        raise UserError(f"config file {path} cannot be read ({e.strerror}); check the path "
                        f"given to {flag}") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"config file {path} is larger than {MAX_BYTES >> 20} MB; give a TOML "
                        f"file of settings to {flag}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text; save it as UTF-8 TOML") from None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        raise UserError(f"config file {path} is not valid TOML ({e}); fix it or leave out "
                        f"{flag}") from None
