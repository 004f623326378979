"""Errors that are the user's to fix.

Anything derived from `UserError` is a mistake in what the user asked for
(a bad number, a missing folder, a corrupt image, no network for a download).
The CLI prints its message as one line on stderr and exits with status 2,
without a traceback. Every other exception is a bug and is allowed to raise.
"""


class UserError(Exception):
    """A mistake in the user's input. The message says what was wrong and what to do."""


class ConfigError(UserError):
    """An impossible or inconsistent setting (batch size 0, unknown model, ...)."""


class DataError(UserError):
    """Data that cannot be found, read or downloaded."""
