"""Settings for the test suite: the ordinary settings, read from the same environment
(so ``DATABASE_URL``/``REDIS_URL`` select PostgreSQL and Redis), plus a throwaway
secret key and a fast password hasher."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
# With DEBUG off the settings refuse to start without the log's origin and signing key
# (tests/audit/test_signing_key_life.py checks that). The suite names its log; unless a key
# is given, it passes one only to get past that check, then keeps the key in DATA_DIR as the
# embedded default does (tests point AUDIT_SIGNING_KEY_PATH at their own folder).
os.environ.setdefault("AUDIT_LOG_ORIGIN", "case-evidence.localhost/audit-log")
_KEY_GIVEN = bool(os.environ.get("AUDIT_SIGNING_KEY") or os.environ.get("AUDIT_SIGNING_KEY_FILE"))
if not _KEY_GIVEN:
    from tlog.note import generate_signer_key

    os.environ["AUDIT_SIGNING_KEY"] = generate_signer_key(os.environ["AUDIT_LOG_ORIGIN"]).encode()

from evidence_service.settings import *  # noqa: E402,F403

if not _KEY_GIVEN:
    del os.environ["AUDIT_SIGNING_KEY"]
    AUDIT_SIGNING_KEY = None

# Tests read the tree right after the request that wrote an event, so they sequence after
# every commit whether or not a broker is configured (its deployment default is covered by
# tests/test_settings_env.py).
AUDIT_INTEGRATE_AFTER_COMMIT = env_bool("AUDIT_INTEGRATE_AFTER_COMMIT", True)  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
