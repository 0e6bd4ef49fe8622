"""What can go wrong that a user can act on, said once: every such error derives from one of
these, and carries whether the user can fix it and whether trying again later can help. The
CLI prints them as one line (no traceback); the DAGs' retry policy retries the retryable ones
and fails the others at once, with the message in the task log.

This module imports nothing, so that naming an error costs no start-up time.
"""

from __future__ import annotations


class MediaTimingError(Exception):
    """An error with a message meant for the user."""

    user_fixable = True  # the message says what to change (a file, an argument, a setting)
    retryable = False  # the same call may succeed later without any change (a lock, a server)


class UserError(MediaTimingError, ValueError):
    """Bad input: a file, an argument, a claim, a URL. Fix it and run again."""


class Unavailable(MediaTimingError, RuntimeError):
    """Something needed is busy or down (the database lock, a mail server): try again later."""

    user_fixable = False
    retryable = True


class Uncertain(MediaTimingError, RuntimeError):
    """An outcome that cannot be known from here (a message the server took without answering):
    a person must check before anything is retried."""

    retryable = False


# What the command line reports as one line. OSError covers files and folders that cannot be
# read or written: the message names the path.
USER_ERRORS = (MediaTimingError, OSError)


class FolderUnusable(UserError):
    """A folder the pipeline must write into cannot be made or written (a file in the way, a
    read-only disk, no permission)."""


def writable_folder(path, what: str, setting: str):
    """Make ``path`` if needed and prove it takes a file, before any work is done that would be
    lost if it did not; ``setting`` names what moves it."""
    import os
    from pathlib import Path

    path = Path(path)
    probe = path / f".probe.{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror
        raise FolderUnusable(f"cannot write the {what} {path}: {reason} (set {setting} to move it)") from None
    return path
