"""The end-to-end suite's stack, in the production shape, all on loopback.

- a fresh PostgreSQL database, owned by a login role of its own that migrates it, and a
  separate runtime login role given its privileges by ``grant_runtime_role``;
- a ``redis-server`` of our own (never the machine's), which the tests stop and start;
- an SMTP sink (aiosmtpd, in this process) that keeps every message it accepts;
- gunicorn (2 workers, ``DEBUG`` off), a Celery worker and Celery beat, all connecting
  as the runtime role, each logging to a file of its own.

Every process is started in a session of its own (so it and its children can be stopped
together), is told to die with this process (``PR_SET_PDEATHSIG``), and is stopped at the
end, on failure or Ctrl-C too. Databases and roles are named after this process's id, so
a run killed outright leaves nothing that a later run does not drop first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import email
import email.policy
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql

from tlog.note import SignerKey, generate_signer_key

ROOT = Path(__file__).resolve().parents[2]

PG_HOST = os.environ.get("CES_E2E_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CES_E2E_PG_PORT", "5432"))
PG_ADMIN_USER = os.environ.get("CES_E2E_PG_USER", "postgres")
#: Loopback ports the suite's servers take (the first free ones), away from the ports other
#: tests and benchmarks use.
WEB_PORTS = range(8151, 8200)
REDIS_PORTS = range(6391, 6400)
NAME_PREFIX = "ces_e2e_"
STARTUP_SECONDS = 90.0
PASSWORD = "e2e-Correct-Horse-Battery-42"


class StackError(RuntimeError):
    """The stack could not be brought up, or a process of it misbehaved."""


def wait_for(condition: Callable[[], object], what: str, timeout: float, logs: Callable[[], str] = str, step=0.2):
    """Poll ``condition`` until it answers something truthy, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")
        time.sleep(step)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(ports: range, taken: set[int]) -> int:
    for port in ports:
        if port not in taken and port_is_free(port):
            taken.add(port)
            return port
    raise StackError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child, before exec: its own session, and SIGTERM when this process dies."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def tail(path: Path, chars: int = 4000) -> str:
    if not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace")
    return text[-chars:]


class Process:
    """One long-running process of the stack, its output in ``log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            out.write(f"\n===== {time.strftime('%H:%M:%S')} starting {self.name}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(  # noqa: S603 - fixed argv of the stack's own programs
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)  # the process's own group: it and its children

    def kill(self) -> None:
        """SIGKILL to the process and every child of it, at once."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 8.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        self.signal_group(signal.SIGKILL)  # whatever is left of it, children included
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def log_tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} ({self.log}) ---\n{tail(self.log, chars)}"


class RedisServer(Process):
    def __init__(self, port: int, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--daemonize", "no", "--dir", str(workdir)]
        super().__init__("redis", argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, workdir / "redis.log")
        self.port = port

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        super().start()
        wait_for(self.answers, f"redis-server on port {self.port}", 15, self.log_tail)

    def stop(self, grace: float = 5.0) -> None:
        super().stop(grace)
        wait_for(lambda: not self.answers(), "redis-server to stop", 10, self.log_tail)


# --- SMTP sink ------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    body: str
    received_at: float
    raw: bytes = field(repr=False)

    def links(self) -> list[str]:
        return re.findall(r"https?://[^\s<>\"')]+", self.body)


class SmtpSink:
    """An SMTP server on loopback that keeps what it accepts. ``hold(predicate)`` makes it
    keep a matching message waiting at the end of DATA (the sender is mid-send) until
    ``release()``; a held message is then refused (451), as a server does with a message
    whose sender went away before it was accepted."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.port = port
        self.messages: list[Mail] = []
        self.lock = threading.Lock()
        self.held: list[str] = []
        self._hold: Callable[[str, list[str]], bool] | None = None
        self._released = threading.Event()
        self.controller = Controller(self, hostname="127.0.0.1", port=port, ready_timeout=10)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.release()
        self.controller.stop()

    def hold(self, predicate: Callable[[str, list[str]], bool]) -> None:
        self._released.clear()
        self._hold = predicate

    def release(self) -> None:
        self._hold = None
        self._released.set()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        subject = str(message.get("Subject", ""))
        hold = self._hold
        if hold is not None and hold(subject, list(envelope.rcpt_tos)):
            with self.lock:
                self.held.append(subject)
            while not self._released.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Held by the test and not accepted"
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        mail = Mail(
            mail_from=envelope.mail_from,
            rcpt_tos=[address.lower() for address in envelope.rcpt_tos],
            subject=subject,
            body=body,
            received_at=time.time(),
            raw=envelope.content,
        )
        with self.lock:
            self.messages.append(mail)
        return "250 Message accepted for delivery"

    def mails(self, to: str | None = None, containing: str | None = None) -> list[Mail]:
        with self.lock:
            found = list(self.messages)
        if to is not None:
            found = [m for m in found if to.lower() in m.rcpt_tos]
        if containing is not None:
            found = [m for m in found if containing in m.subject or containing in m.body]
        return found


# --- PostgreSQL ---------------------------------------------------------------------------


def admin_connect(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN_USER, dbname=dbname, autocommit=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_leftovers() -> None:
    """Drop the databases and roles of earlier runs whose process no longer exists (a run
    killed before it could clean up), so they never pile up or get in the way."""
    pattern = re.compile(rf"^{NAME_PREFIX}(?:owner_|app_)?(\d+)_[0-9a-f]+$")
    with admin_connect() as conn:
        databases = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        roles = [row[0] for row in conn.execute("SELECT rolname FROM pg_roles")]
        for name in databases:
            match = pattern.match(name)
            if match and not pid_alive(int(match.group(1))):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        for name in roles:
            match = pattern.match(name)
            if match and not pid_alive(int(match.group(1))):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@dataclass
class Database:
    name: str
    owner: str
    owner_password: str
    app: str
    app_password: str

    def url(self, role: str, password: str) -> str:
        return f"postgresql://{quote(role)}:{quote(password)}@{PG_HOST}:{PG_PORT}/{self.name}"

    @property
    def owner_url(self) -> str:
        return self.url(self.owner, self.owner_password)

    @property
    def app_url(self) -> str:
        return self.url(self.app, self.app_password)

    @classmethod
    def create(cls) -> Database:
        tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        db = cls(
            name=f"{NAME_PREFIX}{tag}",
            owner=f"{NAME_PREFIX}owner_{tag}",
            owner_password=secrets.token_urlsafe(18),
            app=f"{NAME_PREFIX}app_{tag}",
            app_password=secrets.token_urlsafe(18),
        )
        with admin_connect() as conn:
            for role, password in ((db.owner, db.owner_password), (db.app, db.app_password)):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.name), sql.Identifier(db.owner))
            )
        return db

    def drop(self) -> None:
        with admin_connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            for role in (self.owner, self.app):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    def admin(self) -> psycopg.Connection:
        """A superuser connection to the database, for faults and for checks the API
        cannot make (never for anything the service itself does)."""
        return admin_connect(self.name)


# --- The stack ------------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    db: Database
    redis: RedisServer
    smtp: SmtpSink
    web_port: int
    signing_key: SignerKey
    env: dict[str, str]
    owner_env: dict[str, str]
    web: Process
    worker: Process
    beat: Process
    users: dict[str, dict] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def verifier_key(self) -> str:
        return self.signing_key.verifier().encode()

    # --- commands ---

    def manage(self, *args: str, owner: bool = False, check: bool = True, timeout: float = 120):
        env = self.owner_env if owner else self.env
        done = subprocess.run(  # noqa: S603 - this interpreter running the project's manage.py
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode:
            raise StackError(
                f"manage.py {' '.join(args[:2])} failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
        return done

    # --- processes ---

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in (self.web, self.worker, self.beat, self.redis))

    def start_worker(self) -> None:
        mark = self.worker.log.stat().st_size if self.worker.log.exists() else 0
        self.worker.start()

        def ready() -> bool:
            if not self.worker.running():
                raise StackError(f"the Celery worker exited\n{self.worker.log_tail()}")
            with open(self.worker.log, "rb") as log:
                log.seek(mark)
                return b" ready." in log.read()

        wait_for(ready, "the Celery worker to be ready", STARTUP_SECONDS, self.logs)

    def healthz(self) -> httpx.Response | None:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=5)
        except httpx.HTTPError:
            return None

    def wait_healthy(self, timeout: float = STARTUP_SECONDS) -> dict:
        def healthy():
            for process in (self.web, self.beat):
                if not process.running():
                    raise StackError(f"{process.name} exited\n{self.logs()}")
            response = self.healthz()
            return response is not None and response.status_code == 200 and response.json()

        return wait_for(healthy, "/healthz to answer 200", timeout, self.logs, step=0.5)

    def stop(self) -> None:
        for process in (self.web, self.beat, self.worker):
            try:
                process.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest whatever happens
                print(f"e2e: stopping {process.name} failed: {exc}")

    # --- HTTP ---

    def client(self, username: str | None = None, token: str | None = None) -> httpx.Client:
        headers = {"Accept": "application/json"}
        if username is not None:
            token = token or self.token(username)
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def sign_in(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/api/v1/auth/token/", json={"username": username, "password": password}, timeout=30
        )

    def token(self, username: str) -> str:
        if username not in self._tokens:
            response = self.sign_in(username)
            if response.status_code != 200:
                raise StackError(f"sign-in of {username} answered {response.status_code}: {response.text[:500]}")
            self._tokens[username] = response.json()["token"]
        return self._tokens[username]


USERS = {
    # username: (role, teams, full name)
    "alice": ("practitioner", ["North"], "Alice Ashworth"),
    "carol": ("practitioner", ["North"], "Carol Chen"),
    "tom": ("practitioner", ["North"], "Tom Thorne"),  # for sign-in throttling only
    "bob": ("practitioner", ["South"], "Bob Brennan"),
    "olivia": ("ripa_officer", [], "Olivia Okafor"),
    "oscar": ("ripa_officer", [], "Oscar Osei"),
    "sam": ("sro", [], "Sam Sutherland"),
    "audrey": ("auditor", [], "Audrey Adeyemi"),
}


def email_of(username: str) -> str:
    return f"{username}@e2e-council.example"


def start_stack(workdir: Path, started: list) -> Stack:
    """Bring the whole stack up; everything started is appended to ``started`` at once,
    so that the caller can stop it even when a later step fails."""
    if not shutil.which("redis-server"):
        raise StackError("redis-server is not installed (apt-get install redis-server)")
    try:
        with admin_connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise StackError(f"PostgreSQL at {PG_HOST}:{PG_PORT} as {PG_ADMIN_USER} is not reachable: {exc}") from exc
    drop_leftovers()

    taken: set[int] = set()
    db = Database.create()
    started.append(db.drop)

    redis = RedisServer(free_port(REDIS_PORTS, taken), workdir)
    redis.start()
    started.append(redis.stop)

    smtp = SmtpSink(free_port(WEB_PORTS, taken))
    smtp.start()
    started.append(smtp.stop)

    web_port = free_port(WEB_PORTS, taken)
    origin = f"e2e-{secrets.token_hex(4)}.council.example/audit-log"
    signing_key = generate_signer_key(origin)
    data_dir = workdir / "data"
    data_dir.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "evidence_service.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": db.app_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "AUDIT_SIGNING_KEY": signing_key.encode(),
        "AUDIT_LOG_ORIGIN": origin,
        "SITE_URL": f"http://127.0.0.1:{web_port}",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_USE_TLS": "0",
        "EMAIL_TIMEOUT": "20",
        "DEFAULT_FROM_EMAIL": "case-evidence@e2e-council.example",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "LOG_LEVEL": "INFO",
    }
    owner_env = dict(env, DATABASE_URL=db.owner_url)

    python = sys.executable
    web = Process(
        "gunicorn",
        [python, "-m", "gunicorn", "evidence_service.wsgi:application", "--bind", f"127.0.0.1:{web_port}"]
        + ["--workers", "2", "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-"],
        env,
        workdir / "gunicorn.log",
    )
    worker = Process(
        "celery worker",
        [python, "-m", "celery", "-A", "evidence_service", "worker", "--loglevel", "INFO", "--concurrency", "2"],
        env,
        workdir / "worker.log",
    )
    beat = Process(
        "celery beat",
        [python, "-m", "celery", "-A", "evidence_service", "beat", "--loglevel", "INFO"]
        + ["--schedule", str(workdir / "celerybeat-schedule")],
        env,
        workdir / "beat.log",
    )
    stack = Stack(
        workdir=workdir,
        db=db,
        redis=redis,
        smtp=smtp,
        web_port=web_port,
        signing_key=signing_key,
        env=env,
        owner_env=owner_env,
        web=web,
        worker=worker,
        beat=beat,
    )

    # The owner migrates and grants; everything after runs as the runtime role.
    stack.manage("migrate", "--noinput", "-v", "0", owner=True, timeout=300)
    stack.manage("grant_runtime_role", db.app, owner=True)

    started.append(stack.stop)
    web.start()
    beat.start()
    stack.start_worker()
    # Users, as an administrator would create them on the server (as the runtime role,
    # like `docker compose exec web python manage.py create_user`), a few at a time.
    pending = []
    for username, (role, teams, full_name) in USERS.items():
        argv = [sys.executable, str(ROOT / "manage.py"), "create_user", username, "--role", role]
        for team in teams:
            argv += ["--team", team]
        argv += ["--password", PASSWORD, "--email", email_of(username), "--full-name", full_name]
        process = subprocess.Popen(  # noqa: S603 - this interpreter running the project's manage.py
            argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        pending.append((username, process))
    for username, process in pending:
        out, err = process.communicate(timeout=120)
        if process.returncode:
            raise StackError(f"create_user {username} failed ({process.returncode}):\n{out}\n{err[-3000:]}")
    stack.wait_healthy()
    for username, (role, teams, full_name) in USERS.items():
        stack.users[username] = {"role": role, "teams": teams, "full_name": full_name, "email": email_of(username)}
    return stack
