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
