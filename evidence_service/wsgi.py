"""The WSGI application gunicorn serves (``evidence_service.wsgi:application``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evidence_service.settings")

application = get_wsgi_application()


def freeze_what_is_loaded() -> None:
    """In a server's worker, once the application is loaded (gunicorn.conf.py calls this):
    load the rest of it (the URLconf imports every view, serializer and model module), and
    move all of it out of the reach of Python's cyclic garbage collector (``gc.freeze``).
    Otherwise each full collection walks those hundred thousand objects again, a pause of
    tens of milliseconds that lands on whichever request triggered it. Garbage made while
    serving requests is collected as usual. Not done on import: a test run or the
    development server imports this module too."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now rather than on the first request
    gc.collect()
    gc.freeze()
