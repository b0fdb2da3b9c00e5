"""What the application knows of the server process it runs in."""

from __future__ import annotations

_worker = None


def serving_in(worker) -> None:
    """Called once in each gunicorn worker (gunicorn.conf.py's ``post_worker_init``)."""
    global _worker
    _worker = worker


def still_working() -> None:
    """Tell gunicorn's arbiter that this worker is busy, not stuck.

    A sync worker reports to the arbiter only between requests, and one silent for longer
    than ``--timeout`` (30 s by default) is killed: an answer streamed for longer than that,
    such as an auditor's CSV export of a large log, would be cut off part way. A long
    streamed answer calls this as it makes progress. Outside gunicorn it does nothing."""
    if _worker is not None:
        _worker.notify()
