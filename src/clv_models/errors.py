"""Errors that describe a user's input, not a bug: the CLI prints them as one line and exits with
the error's ``exit_code`` (2, or 3 for too many malformed rows)."""

from __future__ import annotations


class ClvInputError(Exception):
    """A problem with the user's files, columns, flags or config.

    The message is one line that names the file (or flag), what is wrong, and the fix.
    """

    exit_code = 2


class TooManyBadRowsError(ClvInputError):
    """Malformed rows exceed the configured share; the quarantine file was still written."""

    exit_code = 3
