"""The two kinds of failure the CLI reports, and their exit codes."""


class SessionforgeError(Exception):
    """Something failed: exit 1, message on stderr, no traceback."""

    exit_code = 1


class UsageError(SessionforgeError):
    """Bad usage or an invalid answer, detected before anything is written: exit 2."""

    exit_code = 2
