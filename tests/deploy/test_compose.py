"""docker-compose.yml, read as data (no Docker engine runs here): the owner's credentials
reach only the one-off migrate service; web, worker and beat run as the runtime role once it
has completed; the healthcheck asks with a Host Django accepts; the settings come from an env
file whose committed example lists them all without a secret; the required ones are required."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tlog.note import generate_signer_key

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("web", "worker", "beat")
REQUIRED = ("SECRET_KEY", "AUDIT_LOG_ORIGIN", "AUDIT_SIGNING_KEY", "ALLOWED_HOSTS")
#: Every setting of the deployment checklist (docs/operations.md) that .env carries.
CHECKLIST = (
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "TRUST_X_FORWARDED_PROTO",
    "SECURE_HSTS_SECONDS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "TRUSTED_PROXY_HOPS",
    "LOGIN_FAILURES_PER_USER",
    "LOGIN_FAILURES_PER_IP",
    "LOGIN_FAILURE_WINDOW_SECONDS",
    "AUDIT_LOG_ORIGIN",
    "AUDIT_SIGNING_KEY",
    "AUDIT_VERIFIER_KEYS",
    "AUDIT_HEALTH_MAX_LAG_SECONDS",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "DEFAULT_FROM_EMAIL",
    "LOG_LEVEL",
    "WEB_CONCURRENCY",
)
#: Read by something other than evidence_service/settings.py.
NOT_DJANGO_SETTINGS = {"WEB_CONCURRENCY": "gunicorn's number of workers", "SITE_URL": "the people's links (item 5)"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def _owner(services) -> str:
    return services["db"]["environment"]["POSTGRES_USER"]


def _database_user(service) -> str:
    return urlsplit(service["environment"]["DATABASE_URL"]).username


def _strings(value):
    """Every string in a service's configuration (keys and values)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def test_the_stack_has_a_one_off_migrate_and_the_three_runtime_services(services):
    assert {"migrate", "web", "worker", "beat", "db", "redis"} <= set(services)


def test_only_migrate_holds_the_owners_credentials(services):
    owner = _owner(services)
    assert owner == "case_evidence"
    assert _database_user(services["migrate"]) == owner
    assert services["migrate"]["environment"]["DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert services["migrate"]["secrets"] == ["postgres_password"]
    for name in RUNTIME:
        service = services[name]
        assert _database_user(service) == "case_evidence_app", name
        assert service["secrets"] == ["app_db_password"], name
        assert service["environment"]["DATABASE_PASSWORD_FILE"] == "/run/secrets/app_db_password"
        text = "\n".join(_strings(service))
        assert "postgres_password" not in text.lower(), name
        assert f"//{owner}:" not in text and f"//{owner}@" not in text, name
        assert "OWNER" not in text.upper(), name


def test_no_password_is_written_into_the_compose_file(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), (name, key)
            if key == "DATABASE_URL":
                assert urlsplit(value).password is None, name
    assert set(compose["secrets"]) == {"postgres_password", "app_db_password"}


def test_migrate_migrates_then_grants_the_runtime_role_and_exits(services):
    migrate = services["migrate"]
    command = " ".join(migrate["command"]) if isinstance(migrate["command"], list) else migrate["command"]
    grant = r"manage\.py migrate --noinput\s*&&\s*python manage\.py grant_runtime_role case_evidence_app"
    assert re.search(grant, command)
    assert migrate["restart"] == "no" and "ports" not in migrate and "healthcheck" not in migrate
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"


def test_the_runtime_role_granted_is_the_one_created_and_used(services):
    init = (ROOT / "deploy" / "postgres-init.sh").read_text()
    assert "CREATE ROLE case_evidence_app LOGIN" in init
    assert "APP_DB_PASSWORD_FILE" in init and "APP_DB_PASSWORD_FILE" in services["db"]["environment"]
    assert "./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/10-app-role.sh:ro" in services["db"]["volumes"]


def test_web_worker_and_beat_start_only_after_migrate_completed_successfully(services):
    for name in RUNTIME:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["db"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
    assert "celery -A evidence_service worker" in services["worker"]["command"]
    assert "celery -A evidence_service beat" in services["beat"]["command"]
    assert services["web"]["command"].startswith("gunicorn evidence_service.wsgi:application")


def test_settings_come_from_the_env_file_and_the_required_ones_are_required(services):
    for name in ("migrate", *RUNTIME):
        service = services[name]
        assert service["env_file"] == ".env", name
        for variable in REQUIRED:
            value = service["environment"][variable]
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", value), (name, variable, value)


def _env_example() -> str:
    return (ROOT / "deploy" / "env.example").read_text()


def _example_settings() -> dict[str, str]:
    """NAME=value lines, commented out or not."""
    found = {}
    for line in _env_example().splitlines():
        match = re.fullmatch(r"#?\s?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_the_committed_example_lists_every_checklist_setting(compose):
    listed = _example_settings()
    missing = [name for name in CHECKLIST if name not in listed]
    assert not missing, missing
    required_by_compose = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert required_by_compose == set(REQUIRED)
    assert required_by_compose <= set(listed)


def test_every_setting_in_the_example_is_one_the_service_reads():
    settings_source = (ROOT / "evidence_service" / "settings.py").read_text()
    for name in _example_settings():
        if name in NOT_DJANGO_SETTINGS:
            continue
        assert f'"{name}"' in settings_source, f"{name} is not read by evidence_service/settings.py"


def test_the_committed_example_holds_no_secret():
    listed = _example_settings()
    for name in ("SECRET_KEY", "AUDIT_SIGNING_KEY", "EMAIL_HOST_PASSWORD"):
        assert listed[name] == "", name
    text = _env_example()
    assert not re.search(r"PRIVATE\+KEY\+[^<\s]+\+[0-9a-f]{8}\+", text)  # the form is named, no key given
    assert "POSTGRES_PASSWORD" not in text and "APP_DB_PASSWORD" not in text


def test_env_files_and_secrets_stay_out_of_git_and_the_image():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored and "/secrets/" in ignored
    docker_ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in docker_ignored and "secrets" in docker_ignored


def test_the_image_installs_the_lock_and_runs_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert re.search(r"^USER app$", dockerfile, re.M)
    assert '"gunicorn", "evidence_service.wsgi:application"' in dockerfile


# --- The healthcheck, run ------------------------------------------------------------------


def _healthcheck_code(services) -> str:
    test = services["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = test[3]
    assert "$" not in code  # compose would interpolate it
    return code


def _probe(code: str, port: int, allowed_hosts: str) -> subprocess.CompletedProcess:
    code = code.replace("http://127.0.0.1:8000/", f"http://127.0.0.1:{port}/")
    # Fixed arguments: this interpreter running the compose file's own healthcheck.
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "ALLOWED_HOSTS": allowed_hosts},
        capture_output=True,
        text=True,
        timeout=30,
    )


class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 200
    hosts: list[str] = []

    def do_GET(self):  # noqa: N802 - the standard library's name
        type(self).hosts.append(self.headers["Host"])
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.hosts = []
    _Recorder.status = 200
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.mark.parametrize(
    "allowed, expected",
    [
        ("evidence.example-council.gov.uk,other.example", "evidence.example-council.gov.uk"),
        (" .example-council.gov.uk", "example-council.gov.uk"),
        ("*", "localhost"),
    ],
)
def test_the_healthcheck_asks_as_the_first_allowed_host(services, recorder, allowed, expected):
    result = _probe(_healthcheck_code(services), recorder.server_address[1], allowed)
    assert result.returncode == 0, result.stderr
    assert _Recorder.hosts == [expected]


def test_the_healthcheck_fails_when_health_is_not_200(services, recorder):
    _Recorder.status = 503
    assert _probe(_healthcheck_code(services), recorder.server_address[1], "a.example").returncode != 0


def _free_port() -> int:
    for port in range(8141, 8150):  # this helper's own range
        with socket.socket() as candidate:
            if candidate.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.skip("no free port in 8141-8149")


def test_the_healthcheck_passes_against_the_app_in_production_mode_with_a_real_host_name(services, tmp_path):
    """gunicorn with DEBUG off, a real host name in ALLOWED_HOSTS and HTTPS redirection on:
    a plain probe is refused (400), the compose healthcheck is answered 200."""
    host = "evidence.example-council.gov.uk"
    origin = f"{host}/audit-log"
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": host,
        "AUDIT_LOG_ORIGIN": origin,
        "AUDIT_SIGNING_KEY": generate_signer_key(origin).encode(),
        "SECURE_SSL_REDIRECT": "1",
    }
    run = dict(cwd=ROOT, env=env, capture_output=True, text=True)
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], timeout=300, **run)  # noqa: S603
    assert migrated.returncode == 0, migrated.stderr
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - the project's gunicorn from this interpreter's environment
        [sys.executable, "-m", "gunicorn", "evidence_service.wsgi:application", "-w", "1", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as candidate:
                if candidate.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        plain = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
            [
                sys.executable,
                "-c",
                f"import urllib.request, urllib.error\n"
                f"try:\n urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=10)\n"
                f"except urllib.error.HTTPError as e:\n print(e.code)",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert plain.stdout.strip() == "400"  # the old healthcheck: Host 127.0.0.1 is not allowed
        probe = _probe(_healthcheck_code(services), port, host)
        assert probe.returncode == 0, probe.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
