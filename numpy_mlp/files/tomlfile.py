"""The one TOML reader: ``--config`` files of the commands and search files.

TOML is read with the standard library's ``tomllib`` (``tomli`` on Python 3.10); every
failure becomes one :class:`~numpy_mlp.errors.UserError` line that names the file.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..errors import UserError, printable
from .jsonfile import read_regular_bytes

MAX_BYTES = 1 << 20  # a config file is a few lines; a larger one is not a config file


def read_toml(path, flag="--config"):
    """The top-level table of the TOML file ``path``, given to ``flag``.

    Raises UserError naming the file when it is missing, not a regular file (a folder, a
    FIFO: :func:`~numpy_mlp.files.regular.open_regular`), larger than MAX_BYTES, not UTF-8
    or not valid TOML.
    """
    raw = read_regular_bytes(path, limit=MAX_BYTES, error=UserError, what="config file",
                             fix=f"check the path given to {flag}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"config file {printable(path)} is not UTF-8 text; save it as UTF-8 "
                        "TOML") from None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        raise UserError(f"config file {printable(path)} is not valid TOML ({e}); fix it or "
                        f"leave out {flag}") from None
