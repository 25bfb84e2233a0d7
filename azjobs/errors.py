"""The few errors a user can cause; each message names the cause and the fix."""


class AzjobsError(Exception):
    """A user-facing failure: the CLI prints its one-line message and exits non-zero."""
