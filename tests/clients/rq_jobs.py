"""Job functions for rq_check.py: the rq worker imports them by name (`rq_jobs.add`).

Kept in a module of their own so that the worker process, started with `--path` pointing
at this directory, imports them without running the scenario.
"""

import time


def add(a, b):
    """A job that succeeds: its return value is the job's result."""
    return a + b


def fail(message):
    """A job that raises: the worker moves it to the failed job registry."""
    raise ValueError(message)


def stamp():
    """A job that returns the time it ran (the dependency check compares times)."""
    return time.time()
