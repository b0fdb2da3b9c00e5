"""The WSGI application gunicorn serves (``evidence_service.wsgi:application``).

Everything loaded here lives as long as the process. It is loaded in full (the URLconf
imports every view, serializer and model module) and then moved out of the reach of
Python's cyclic garbage collector (``gc.freeze``): otherwise each full collection walks
those hundred thousand objects again, a pause of tens of milliseconds that lands on
whichever request triggered it. Garbage made while serving requests is collected as usual.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evidence_service.settings")

application = get_wsgi_application()


def _freeze_what_was_loaded() -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now rather than on the first request
    gc.collect()
    gc.freeze()


_freeze_what_was_loaded()
