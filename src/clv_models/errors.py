"""Errors that describe a user's input or the machine, not a bug: the CLI prints them as one line
and exits with the error's ``exit_code`` (2 for input, 3 for too many malformed rows, 4 for the
environment: disk full, permission denied, a path that cannot be created)."""

from __future__ import annotations

import errno
from pathlib import Path


class ClvError(Exception):
    """Base of the one-line errors; ``exit_code`` is the CLI's exit status."""

    exit_code = 1


class ClvInputError(ClvError):
    """A problem with the user's files, columns, flags or config.

    The message is one line that names the file (or flag), what is wrong, and the fix.
    """

    exit_code = 2


class TooManyBadRowsError(ClvInputError):
    """Malformed rows exceed the configured share; the quarantine file was still written."""

    exit_code = 3


class ClvEnvironmentError(ClvError):
    """The machine refused a write: disk full, permission denied, read-only or missing directory,
    a file-size limit. One line naming the path and the fix; the previous output stays intact."""

    exit_code = 4


_FIXES = {
    errno.ENOSPC: ("no space left on the device", "free space there or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or write elsewhere"),
    errno.EFBIG: ("file too large for this process's file-size limit (ulimit -f)", "raise the limit or write elsewhere"),
    errno.EACCES: ("permission denied", "make the directory writable for this user or write elsewhere"),
    errno.EPERM: ("operation not permitted", "make the directory writable for this user or write elsewhere"),
    errno.EROFS: ("read-only file system", "write to a writable file system"),
    errno.ENOENT: ("no such file or directory", "create the directory or fix the path"),
    errno.ENOTDIR: ("a part of the path is not a directory", "fix the path"),
}


def environment_error(
    exc: BaseException, path: str | Path, what: str, fix: str | None = None
) -> ClvEnvironmentError:
    """The one-line error for ``exc`` (an ``OSError``, or a library's I/O error that only says the
    reason in its message) raised while writing ``what`` (e.g. "scores") to ``path``."""
    code = getattr(exc, "errno", None)
    if code is None:  # pyarrow and DuckDB put the errno in the message only
        text = str(exc).lower()
        code = next(
            (number for number, marker in (
                (errno.ENOSPC, "no space left"), (errno.ENOSPC, "database or disk is full"),
                (errno.EFBIG, "file too large"), (errno.EROFS, "readonly database"),
                (errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
                (errno.ENOENT, "no such file or directory"),
            ) if marker in text),
            None,
        )  # fmt: skip
    reason, default_fix = _FIXES.get(
        code, (str(exc).splitlines()[0] if str(exc) else type(exc).__name__, "check the path")
    )
    if fix is not None:
        return ClvEnvironmentError(f"cannot open {what} {path}: {reason}; {fix}")
    return ClvEnvironmentError(f"cannot write {what} to {path}: {reason}; {default_fix} (nothing was replaced)")
