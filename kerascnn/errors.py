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


class StorageError(UserError):
    """A write the disk refused (full, failing or read-only): the user's to free or fix."""


# errno values of a disk that refuses a write: full, over quota, failing, read-only.
DISK_ERRNOS = {28, 122, 5, 30}  # ENOSPC, EDQUOT, EIO, EROFS


def is_disk_error(error):
    """Whether `error` is an OSError of a disk that refused a write (see DISK_ERRNOS)."""
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def disk_error_text(error, folder=None):
    """'cannot write FILE: No space left on device' for an OSError of the disk ('... in FOLDER' without a file name)."""
    where = f" {error.filename}" if error.filename else (f" in {folder}" if folder else "")
    return f"cannot write{where}: {error.strerror or error}"


def user_error_line(prog, error):
    """`PROG: error: MESSAGE` on one line (a message's own line breaks and runs of spaces made single spaces)."""
    return f"{prog}: error: {' '.join(str(error).split())}"


def script_exit_status(main, prog, argv=None):
    """Run a script's `main(argv)`; a `UserError` becomes one `user_error_line` on stderr and status 2.

    The benchmark scripts' counterpart of the CLI's handling (kerascnn.cli.app):
    a bad `--set lr=-1`, an unknown recipe or a missing data folder is the
    user's to fix and gets one line, not a traceback. The scripts check their
    settings and data folder before they write a run directory.
    """
    import sys

    try:
        return main(argv)
    except UserError as e:
        print(user_error_line(prog, e), file=sys.stderr)
        return 2
