"""Errors the `marketlake` command reports as one line with exit status 2."""


class UsageError(Exception):
    """A request that can't start (bad symbol, range or option); nothing has been written."""
