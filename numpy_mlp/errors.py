"""The one exception type that the command line turns into a one-line message.

Anything the user can fix (a missing folder, a bad flag value, a corrupt file) is raised
as a :class:`UserError` (or a subclass) whose message names the problem and says what to
do. The CLI prints ``error: <message>`` and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, files or settings; the message says what to do."""


class DataError(UserError):
    """CIFAR-10 could not be found, downloaded, verified or read."""


class ModelFileError(UserError):
    """A saved model or checkpoint is missing, damaged or of an incompatible kind."""


class ConfigError(UserError):
    """A hyperparameter or flag value is out of range."""


class DivergenceError(UserError):
    """Training produced a NaN or infinite loss."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run at a safe point; the message says what was saved and
    how to go on.

    A ``KeyboardInterrupt``, so that anything that does not know it still stops; the CLI
    prints the message and exits with status 128 + ``signum`` (130 for Ctrl-C, 143 for
    SIGTERM, as a shell reports a process those signals ended).
    """

    def __init__(self, message="", signum=2):
        super().__init__(message)
        self.signum = signum


class CheckpointError(ModelFileError):
    """A checkpoint is damaged, hand-edited, or does not fit the run it should continue."""


class RunFileError(UserError):
    """A JSON file of a run folder (config.json, metrics.json, run.json) is damaged or holds
    something of the wrong shape."""


class RunFolderError(UserError):
    """A run folder cannot be written (missing, a file, read-only, full, a name that is not
    UTF-8), is in use by another run, or holds a link where a run file goes."""


def printable(path):
    """``path`` as text for a message: bytes that are not UTF-8 appear as ``\\xNN`` escapes,
    control characters (a newline, a terminal escape) as ``\\n``, ``\\x1b``.

    A name read from the command line keeps such bytes as lone surrogates, which no
    UTF-8 stream (the terminal, the log, a JSON file) can write; a newline in a file name
    would otherwise start a second, forged ``numpy-mlp: error:`` line.
    """
    text = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
