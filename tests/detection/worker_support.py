"""Test-only pieces for the worker-crash test in test_notification_worker.py: the project's
Celery app with a short Redis visibility timeout, and an email backend that can be held
mid-send so that the worker can be killed while a task is running.

Not used by the service, and never imported by the tests themselves (it changes the
Celery app's configuration): run as ``celery -A tests.detection.worker_support worker``.
"""

import os
import time
from pathlib import Path

from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend

from evidence_service.celery import app

# A message taken by a worker that then dies stays "unacked" in Redis until this many
# seconds (NOTIFY_VISIBILITY_TIMEOUT) have passed, and is then handed out again (by the
# next worker as it starts). The default is an hour; the test cannot wait that long.
app.conf.broker_transport_options = {"visibility_timeout": int(os.environ["NOTIFY_VISIBILITY_TIMEOUT"])}

__all__ = ["app", "HoldingFileEmailBackend"]


class HoldingFileEmailBackend(FileEmailBackend):
    """Writes messages to files, as the file-based backend does; but while the file named
    by ``NOTIFY_HOLD_FILE`` exists it first touches ``sending`` beside it and waits (at
    most 30 s), so a test knows a send is under way and can kill the worker there."""

    def send_messages(self, email_messages):
        hold = Path(os.environ["NOTIFY_HOLD_FILE"])
        if hold.exists():
            (hold.parent / "sending").touch()
            deadline = time.monotonic() + 30
            while hold.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().send_messages(email_messages)
