import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from evidence_service.env import env_bool, env_int, env_list, env_secret, env_site_url, parse_database_url
from tlog.note import generate_signer_key

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "council.example/audit-log"
#: What production (DEBUG off) cannot start without.
REQUIRED = {
    "SECRET_KEY": "x" * 50,
    "AUDIT_LOG_ORIGIN": ORIGIN,
    "AUDIT_SIGNING_KEY": generate_signer_key(ORIGIN).encode(),
}


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("off", False), ("", False)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("FLAG", value)
    assert env_bool("FLAG") is expected


def test_env_bool_fails_loudly_on_nonsense(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env_bool("FLAG")


def test_env_int_checks_type_and_range(monkeypatch):
    monkeypatch.setenv("N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("N", 5, minimum=1)
    monkeypatch.delenv("N")
    assert env_int("N", 5) == 5


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,, ")
    assert env_list("HOSTS") == ["a.example", "b.example"]


def test_secrets_can_come_from_a_file_but_not_both(monkeypatch, tmp_path):
    secret = tmp_path / "s"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("API_SECRET_FILE", str(secret))
    assert env_secret("API_SECRET") == "from-a-file"
    monkeypatch.setenv("API_SECRET", "direct")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_secret("API_SECRET")


def test_postgres_urls_become_database_settings(tmp_path):
    config = parse_database_url(
        "postgresql://svc:p%40ss@db.internal:6543/case_evidence?sslmode=require", base_dir=tmp_path
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "svc",
        "p@ss",
        "db.internal",
        "6543",
        "case_evidence",
    )
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_sqlite_urls_relative_and_absolute(tmp_path):
    assert parse_database_url("sqlite:///data/x.sqlite3", base_dir=tmp_path)["NAME"] == str(tmp_path / "data/x.sqlite3")
    assert parse_database_url("sqlite:////var/db.sqlite3", base_dir=tmp_path)["NAME"] == "/var/db.sqlite3"


@pytest.mark.parametrize("url", ["mysql://localhost/db", "postgresql://localhost/", "postgresql://h:notaport/db"])
def test_unsupported_or_incomplete_database_urls_fail_loudly(url, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        parse_database_url(url, base_dir=tmp_path)


def _load_settings(env: dict) -> subprocess.CompletedProcess:
    code = "import evidence_service.settings"
    clean = {"PATH": "/usr/bin:/bin", "DATA_DIR": env.pop("DATA_DIR")}
    # Fixed arguments: this interpreter importing the settings module.
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = _load_settings({"DATA_DIR": str(tmp_path)})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_debug_without_a_secret_key_keeps_a_generated_one_private(tmp_path):
    result = _load_settings({"DATA_DIR": str(tmp_path), "DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text()) >= 50


@pytest.mark.parametrize("name, value", [("REDIS_URL", "http://x"), ("API_TOKEN_TTL_HOURS", "soon"), ("DEBUG", "2")])
def test_bad_settings_stop_the_service_from_starting(tmp_path, name, value):
    result = _load_settings({"DATA_DIR": str(tmp_path), **REQUIRED, name: value})
    assert result.returncode != 0 and name in result.stderr


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({}, "True"),  # no broker, no periodic task: the request path sequences
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "False"),  # the periodic task sequences in batches
        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "AUDIT_INTEGRATE_AFTER_COMMIT": "1"}, "True"),
    ],
)
def test_who_sequences_the_audit_log_depends_on_the_broker(tmp_path, extra, expected):
    code = "from evidence_service import settings; print(settings.AUDIT_INTEGRATE_AFTER_COMMIT)"
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), **REQUIRED, **extra}
    result = subprocess.run(  # noqa: S603 - this interpreter importing the settings module
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("https://evidence.council.example/", "https://evidence.council.example"),
        ("http://127.0.0.1:8131", "http://127.0.0.1:8131"),
        ("https://council.example/evidence/", "https://council.example/evidence"),
    ],
)
def test_site_url_is_an_absolute_http_url_without_its_trailing_slash(monkeypatch, value, expected):
    monkeypatch.setenv("SITE_URL", value)
    assert env_site_url("SITE_URL", "http://127.0.0.1:8000") == expected


@pytest.mark.parametrize(
    "value",
    [
        "evidence.council.example",
        "/flags/",
        "ftp://evidence.council.example",
        "https://",
        "https://evidence.council.example/?next=x",
        "https://evidence.council.example/#top",
        "https://user:secret@evidence.council.example",
        "https://evidence.council.example:99999",
        "https://evidence.council.example/a b",
        "javascript:alert(1)",
    ],
)
def test_a_site_url_that_is_not_an_absolute_http_url_stops_the_service(monkeypatch, value):
    monkeypatch.setenv("SITE_URL", value)
    with pytest.raises(ImproperlyConfigured, match="SITE_URL"):
        env_site_url("SITE_URL", "http://127.0.0.1:8000")


def test_without_site_url_links_point_at_the_local_default(monkeypatch):
    monkeypatch.delenv("SITE_URL", raising=False)
    assert env_site_url("SITE_URL", "http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_a_bad_site_url_stops_the_service_from_starting(tmp_path):
    result = _load_settings({"DATA_DIR": str(tmp_path), **REQUIRED, "SITE_URL": "council.example"})
    assert result.returncode != 0 and "SITE_URL" in result.stderr


def test_check_deploy_warns_when_site_url_is_left_at_the_local_default(settings):
    from detection.checks import site_url_set

    settings.SITE_URL = settings.SITE_URL_DEFAULT
    [warning] = site_url_set(None)
    assert warning.id == "detection.W001" and "SITE_URL" in warning.msg
    settings.SITE_URL = "https://evidence.council.example"
    assert site_url_set(None) == []


def _database_settings(tmp_path, **extra) -> subprocess.CompletedProcess:
    code = "import json; from evidence_service import settings as s; print(json.dumps(s.DATABASES['default']))"
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), **REQUIRED, **extra}
    return subprocess.run(  # noqa: S603 - this interpreter importing the settings module
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_database_password_may_come_from_a_file_as_docker_compose_gives_it(tmp_path):
    secret = tmp_path / "app_db_password"
    secret.write_text("s3cret:/@?\n")
    url = "postgresql://case_evidence_app@db:5432/case_evidence"
    result = _database_settings(tmp_path, DATABASE_URL=url, DATABASE_PASSWORD_FILE=str(secret))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["PASSWORD"] == "s3cret:/@?"


@pytest.mark.parametrize(
    "url",
    ["postgresql://case_evidence_app:inline@db:5432/case_evidence", "sqlite:///data/x.sqlite3"],
)
def test_a_database_password_given_twice_or_for_sqlite_stops_the_service(tmp_path, url):
    result = _database_settings(tmp_path, DATABASE_URL=url, DATABASE_PASSWORD="other")
    assert result.returncode != 0 and "DATABASE_PASSWORD" in result.stderr
