"""Settings for the test suite: the ordinary settings, read from the same environment
(so ``DATABASE_URL``/``REDIS_URL`` select PostgreSQL and Redis), plus a throwaway
secret key and a fast password hasher."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from evidence_service.settings import *  # noqa: E402,F403

# Tests read the tree right after the request that wrote an event, so they sequence after
# every commit whether or not a broker is configured (its deployment default is covered by
# tests/test_settings_env.py).
AUDIT_INTEGRATE_AFTER_COMMIT = env_bool("AUDIT_INTEGRATE_AFTER_COMMIT", True)  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
