"""Settings for the Case Evidence Service, read from the environment.

With no environment at all the service runs on its embedded default: SQLite in
``DATA_DIR``, Celery tasks run eagerly in-process, email printed to the console.
Each integration switches on by setting its URL (``DATABASE_URL``, ``REDIS_URL``,
``EMAIL_HOST``). Bad values fail loudly at start-up (see ``evidence_service.env``).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from evidence_service.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_secret,
    env_site_url,
    env_str,
    parse_database_url,
    validate_redis_url,
)
from tlog.note import NoteError, parse_signer_key, parse_verifier_key

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = env_bool("DEBUG", False)


def _local_secret_key() -> str:
    """Development only: a key generated once and kept in the data folder (mode 0600),
    so sessions and tokens survive restarts without a secret in the repository."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off.")
    SECRET_KEY = _local_secret_key()
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "audit",
    "cases",
    "authorisations",
    "detection",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "evidence_service.middleware.RequestIdMiddleware",
    "evidence_service.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "evidence_service.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that its refusals carry every header the others add.
    "evidence_service.middleware.RequestBodyMiddleware",
]

ROOT_URLCONF = "evidence_service.urls"
WSGI_APPLICATION = "evidence_service.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _default_db = parse_database_url(DATABASE_URL, base_dir=BASE_DIR)
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _default_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "db.sqlite3")}
# The password may come on its own rather than inside DATABASE_URL: DATABASE_PASSWORD, or
# DATABASE_PASSWORD_FILE (a Docker secret, as docker-compose.yml gives it).
_database_password = env_secret("DATABASE_PASSWORD")
if _database_password is not None:
    if _default_db["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_PASSWORD is for a postgresql:// DATABASE_URL.")
    if _default_db["PASSWORD"]:
        raise ImproperlyConfigured("Give the database password in DATABASE_URL or in DATABASE_PASSWORD, not both.")
    _default_db["PASSWORD"] = _database_password
if _default_db["ENGINE"] == "django.db.backends.postgresql":
    _default_db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _default_db["CONN_HEALTH_CHECKS"] = True
else:
    # Writers wait for the lock rather than failing at once under light concurrency, and
    # take it when their transaction begins (IMMEDIATE), so two transactions never both
    # read and then fail to upgrade to a write.
    _default_db.setdefault("OPTIONS", {}).update(
        {"timeout": env_int("SQLITE_TIMEOUT", 20, minimum=1), "transaction_mode": "IMMEDIATE"}
    )
DATABASES = {"default": _default_db}
# The request path's own statements are prepared once per connection (evidence_service/db.py);
# turn this off behind a pooler that shares connections between sessions (PgBouncer in
# transaction mode).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery ------------------------------------------------------------
REDIS_URL = validate_redis_url("REDIS_URL", env_str("REDIS_URL"))
if REDIS_URL:
    # Nothing on the request path depends on the cache (the sign-in throttle counts in the
    # database); short timeouts keep any later use of it from hanging while Redis is down.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in-process as they are queued (the embedded default).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {
    # Sequences audit events committed out of id order, and signs a checkpoint for
    # whatever the request path has appended since the last one.
    "audit-integrate": {"task": "audit.tasks.audit_integrate", "schedule": 2.0},
}

# --- Tamper-evident audit log (RFC 9162 Merkle tree, signed checkpoints) ---------------
# The log's name, written into every leaf and checkpoint; unique per deployment, and never
# changed (a new name starts a new log). Required when DEBUG is off (checked at the end).
AUDIT_LOG_ORIGIN = env_str("AUDIT_LOG_ORIGIN")
# The Ed25519 signing key in signed-note form (PRIVATE+KEY+<origin>+<id>+<base64>), from the
# environment or a file. Required when DEBUG is off; with DEBUG on and none set, a key is
# generated on first use and kept in DATA_DIR/audit-signing.key (mode 0600).
AUDIT_SIGNING_KEY = env_secret("AUDIT_SIGNING_KEY")
AUDIT_SIGNING_KEY_PATH = DATA_DIR / "audit-signing.key"
# Verifier keys of earlier signing keys (<origin>+<key id>+<base64>, separated by commas or
# white space, or one a line in AUDIT_VERIFIER_KEYS_FILE), still trusted so that the
# checkpoints they signed keep verifying after a rotation. The current key's is implied.
AUDIT_VERIFIER_KEYS = (env_secret("AUDIT_VERIFIER_KEYS") or "").replace(",", " ").split()
# /healthz answers 503 when an audit event has waited longer than this to be sequenced, or
# (with a broker) when the periodic tasks that beat sends have not run for this long.
AUDIT_HEALTH_MAX_LAG_SECONDS = env_int("AUDIT_HEALTH_MAX_LAG_SECONDS", 60, minimum=1)
# Sequence new events in-process right after each commit (the request path never waits
# for another integrator: it skips when one is running). With a broker, the periodic task
# sequences them in batches instead (every 2 s, far cheaper per event than one at a time),
# which keeps the tree's work off the request path; without one there is no periodic task,
# so the request path must do it.
AUDIT_INTEGRATE_AFTER_COMMIT = env_bool("AUDIT_INTEGRATE_AFTER_COMMIT", not REDIS_URL)
# Sign at most one checkpoint per interval on the request path; the periodic task signs
# whatever is left. Without a broker there is no periodic task, so sign every time.
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env_int("AUDIT_CHECKPOINT_INTERVAL_MS", 1000 if REDIS_URL else 0, minimum=0) / 1000
# Transactions are assumed to finish within this; the periodic sweep looks this far back
# for events that committed after higher-numbered ones.
AUDIT_SEQUENCING_GRACE_SECONDS = env_int("AUDIT_SEQUENCING_GRACE_SECONDS", 60, minimum=1)

# --- Email --------------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
    if EMAIL_USE_TLS and EMAIL_USE_SSL:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on.")
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    # Where django.core.mail.backends.filebased.EmailBackend writes each message (the
    # notification worker test reads them there).
    EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "case-evidence@localhost")
# Where people reach the service: every email's link is built on it (e.g.
# https://evidence.council.example/flags/12/). An absolute http(s) URL; set it in every
# deployment (``manage.py check --deploy`` warns when it is left at the local default).
SITE_URL_DEFAULT = "http://127.0.0.1:8000"
SITE_URL = env_site_url("SITE_URL", SITE_URL_DEFAULT)

# --- Accounts and authentication --------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
API_TOKEN_TTL = timedelta(hours=env_int("API_TOKEN_TTL_HOURS", 12, minimum=1, maximum=24 * 30))
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Browser sessions last no longer than API tokens.
SESSION_COOKIE_AGE = int(API_TOKEN_TTL.total_seconds())
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/api/v1/docs/"

# Sign-in throttling (accounts/throttling.py; the API token and the session sign-in share
# the counts, kept in the database so that they hold without Redis). Past a limit within the
# window, further attempts are refused with 429 without checking the password. 0 switches a
# limit off. Failures of one username from one address:
LOGIN_FAILURES_PER_USER_AND_IP = env_int("LOGIN_FAILURES_PER_USER_AND_IP", 5, minimum=0)
# ... from one address, whatever the username:
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 20, minimum=0)
# ... of one username from every address together (a distributed guess), not applied at an
# address the username signed in from within LOGIN_KNOWN_ADDRESS_DAYS (0 = nowhere exempt):
LOGIN_FAILURES_PER_USER = env_int("LOGIN_FAILURES_PER_USER", 100, minimum=0)
LOGIN_KNOWN_ADDRESS_DAYS = env_int("LOGIN_KNOWN_ADDRESS_DAYS", 30, minimum=0, maximum=3650)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1, maximum=7 * 24 * 3600)

# Number of reverse proxies in front of the app whose X-Forwarded-For entries are
# trusted when recording a request's address in the audit log. 0 = use REMOTE_ADDR.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=5)

# --- REST framework and OpenAPI ---------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first so that a request without credentials answers 401 with
        # WWW-Authenticate: Token, not 403.
        "accounts.authentication.ExpiringTokenAuthentication",
        "accounts.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["evidence_service.api.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "evidence_service.api.negotiation.ServiceContentNegotiation",
    "EXCEPTION_HANDLER": "evidence_service.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "evidence_service.api.schema.ServiceAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Case Evidence Service API",
    "DESCRIPTION": (
        "Records every look at a service user's social media against a case, with its "
        "purpose, consent and authorisation, and an append-only audit log of every action."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {},
}

# --- Internationalisation, static files ------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Security -------------------------------------------------------------------------------
# With Content-Security-Policy (evidence_service.middleware) on every response.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# A session-page form posted without its CSRF token is refused (403) and audited.
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# The health probe (docker-compose.yml's healthcheck, a load balancer's) asks over plain HTTP
# from beside the app: answered, not redirected. It shows no data.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Strict-Transport-Security, sent on HTTPS responses only; set it (e.g. 31536000) once
# the service is served over TLS (see the deployment checklist, docs/operations.md).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The load benchmark's floor endpoint (bench/floor.py, /bench/floor/viewings/): only for
# bench/load.py, never in production.
BENCH_FLOOR_ENDPOINT = env_bool("BENCH_FLOOR_ENDPOINT", False)

LOG_LEVEL = env_choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# --- Authorisations (RIPA and non-RIPA) -------------------------------------------------
# England and Wales: a council's RIPA authorisation takes effect only once a magistrate
# approves it (RIPA s.32A) and directed surveillance needs the 6-month crime threshold.
# Scotland has neither.
AUTHORISATION_JURISDICTION = env_choice(
    "AUTHORISATION_JURISDICTION", ("england_and_wales", "scotland"), "england_and_wales"
)
# The role that stands in for the Head of Paid Service, and the applications that need it.
AUTHORISATION_SENIOR_GRANT_ROLE = env_choice("AUTHORISATION_SENIOR_GRANT_ROLE", ("sro", "ripa_officer"), "sro")
AUTHORISATION_SENIOR_GRANT_WHEN = env_list(
    "AUTHORISATION_SENIOR_GRANT_WHEN", ["confidential_information", "juvenile_source", "vulnerable_source"]
)
if unknown := set(AUTHORISATION_SENIOR_GRANT_WHEN) - {
    "confidential_information",
    "juvenile_source",
    "vulnerable_source",
}:
    raise ImproperlyConfigured(f"AUTHORISATION_SENIOR_GRANT_WHEN has unknown reasons: {', '.join(sorted(unknown))}.")
# Directed surveillance under RIPA: the offence's maximum sentence, in months (SI 2010/521 art.7A).
# A correction that moves a look's viewed_at by more than this needs a late-entry reason.
VIEWING_CORRECTION_MAX_SHIFT_HOURS = env_int("VIEWING_CORRECTION_MAX_SHIFT_HOURS", 24, minimum=0, maximum=24 * 365)
# A consent granted more than this many days before it is recorded needs a reason.
CONSENT_LATE_RECORD_DAYS = env_int("CONSENT_LATE_RECORD_DAYS", 7, minimum=0, maximum=3650)
AUTHORISATION_CRIME_THRESHOLD_MONTHS = env_int("AUTHORISATION_CRIME_THRESHOLD_MONTHS", 6, minimum=0)
# The longest a non-RIPA authorisation (or one renewal of it) may run, in months.
AUTHORISATION_NON_RIPA_MAX_MONTHS = env_int("AUTHORISATION_NON_RIPA_MAX_MONTHS", 3, minimum=1, maximum=12)
# Central record retention, in years from the end of each authorisation (at least 3).
AUTHORISATION_RETENTION_YEARS = env_int("AUTHORISATION_RETENTION_YEARS", 5, minimum=3, maximum=100)
# Expiries this close are reminded to the authorising officer and the applicant.
AUTHORISATION_EXPIRY_REMINDER_DAYS = env_int("AUTHORISATION_EXPIRY_REMINDER_DAYS", 14, minimum=1, maximum=90)
CELERY_BEAT_SCHEDULE.update(
    {
        "authorisations-expire-due": {"task": "authorisations.expire_due", "schedule": timedelta(hours=1)},
        "authorisations-send-reminders": {"task": "authorisations.send_reminders", "schedule": timedelta(hours=1)},
    }
)
# Authorisation scopes list platforms, as profiles and consents do: one enum in the schema.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({"PlatformEnum": "cases.profiles.PLATFORM_CHOICES"})

# --- Detection: flag notifications ------------------------------------------------------
# Queue again notifications whose task was lost (Redis down at commit, a dropped message);
# see detection/notifications.py.
# Every 30 s, for those pending 30 s: an email owed while Redis was down goes out within about
# a minute of its return (delivery sends each notification once, so queueing twice is harmless).
CELERY_BEAT_SCHEDULE["detection-resend-notifications"] = {
    "task": "detection.resend_pending_notifications",
    "schedule": 30.0,
}

# --- What production cannot start without -------------------------------------------------
# Checked last, so that a malformed setting above is reported by name first.
if not DEBUG:
    # A placeholder origin or a key generated where nobody keeps it would give a log that
    # nobody can verify later: refuse to start instead (manage.py, gunicorn, Celery alike).
    _missing = [
        name
        for name, value in (
            ("AUDIT_SIGNING_KEY (or AUDIT_SIGNING_KEY_FILE)", AUDIT_SIGNING_KEY),
            ("AUDIT_LOG_ORIGIN", AUDIT_LOG_ORIGIN),
        )
        if not value
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"{' and '.join(_missing)} must be set when DEBUG is off (see docs/operations.md: "
            "generate a key with `python3 tools/audit_keygen.py ORIGIN`)."
        )
AUDIT_LOG_ORIGIN = AUDIT_LOG_ORIGIN or "case-evidence.localhost/audit-log"
if any(ch.isspace() for ch in AUDIT_LOG_ORIGIN) or "+" in AUDIT_LOG_ORIGIN:
    raise ImproperlyConfigured("AUDIT_LOG_ORIGIN may not contain spaces or '+'.")
if AUDIT_SIGNING_KEY:
    # A key that cannot sign this log would let the service start and fail at its first
    # checkpoint: refuse now, naming the setting but never printing the secret.
    try:
        _signer = parse_signer_key(AUDIT_SIGNING_KEY)
    except (NoteError, ValueError) as _error:
        raise ImproperlyConfigured(
            "AUDIT_SIGNING_KEY (or AUDIT_SIGNING_KEY_FILE) is not a valid signed-note Ed25519 key "
            "(PRIVATE+KEY+ORIGIN+ID+KEY, as tools/audit_keygen.py prints)."
        ) from None
    if _signer.name != AUDIT_LOG_ORIGIN:
        raise ImproperlyConfigured(
            f"AUDIT_SIGNING_KEY (or AUDIT_SIGNING_KEY_FILE) is a key of {_signer.name!r}, "
            f"not of AUDIT_LOG_ORIGIN {AUDIT_LOG_ORIGIN!r}: checkpoints are signed under the log's origin."
        )
for _key in AUDIT_VERIFIER_KEYS:
    try:
        _verifier = parse_verifier_key(_key)
    except NoteError as _error:
        raise ImproperlyConfigured(f"AUDIT_VERIFIER_KEYS: {_key!r} is not a verifier key: {_error}") from _error
    if _verifier.name != AUDIT_LOG_ORIGIN:
        raise ImproperlyConfigured(
            f"AUDIT_VERIFIER_KEYS: {_key!r} is a key of {_verifier.name!r}, "
            f"not of AUDIT_LOG_ORIGIN {AUDIT_LOG_ORIGIN!r}."
        )

# Linking a person known only through other teams' cases (by external_id) needs their name and
# date of birth. A practitioner whose attempts are refused this many times in 24 hours may
# make no more that day (429); from LINK_GUESSING_FLAG_AFTER refusals a LINK_GUESSING flag
# about the person goes to the officers (issue 18).
LINK_FAILURES_PER_DAY = env_int("LINK_FAILURES_PER_DAY", 5, minimum=1)
LINK_GUESSING_FLAG_AFTER = env_int("LINK_GUESSING_FLAG_AFTER", 2, minimum=1)
