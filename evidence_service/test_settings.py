"""Settings for the test suite: the ordinary settings, read from the same environment
(so ``DATABASE_URL``/``REDIS_URL`` select PostgreSQL and Redis), plus a throwaway
secret key and a fast password hasher."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from evidence_service.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
