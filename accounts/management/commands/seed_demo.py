"""python manage.py seed_demo

Demo users for every role, two teams and one example case, for trying the service on the
embedded default. Idempotent: running it again changes nothing and prints the same
credentials. Passwords are generated on the first run and kept in DATA_DIR (mode 0600),
never in the repository."""

import json
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Role, User
from accounts.services import user_create_or_update, user_update_details
from audit.services import AuditContext
from cases import services as case_services
from cases.models import Case

DEMO_USERS = [
    ("alice", Role.PRACTITIONER, ["Children's Services North"]),
    ("bob", Role.PRACTITIONER, ["Children's Services South"]),
    ("olivia", Role.RIPA_OFFICER, []),
    ("sam", Role.SRO, []),
    ("audrey", Role.AUDITOR, []),
    ("adam", Role.ADMIN, []),
]
#: Each demo user's full name and grade; their address is USERNAME@example.org (a domain
#: reserved for examples, RFC 2606, so no demo email can reach a real person).
DEMO_DETAILS = {
    "alice": ("Alice Practitioner", ""),
    "bob": ("Bob Practitioner", ""),
    "olivia": ("Olivia Officer", "Head of Legal Services"),
    "sam": ("Sam Senior", "Chief Executive (Senior Responsible Officer)"),
    "audrey": ("Audrey Auditor", ""),
    "adam": ("Adam Administrator", ""),
}
DEMO_EMAIL_DOMAIN = "example.org"


class Command(BaseCommand):
    help = "Create demo users for every role (idempotent) and print their credentials."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed even when DEBUG is off (never on a live council system).",
        )

    def handle(self, *args, allow_without_debug=False, **options):
        if not (settings.DEBUG or allow_without_debug):
            raise CommandError("seed_demo is for demonstration instances; run with DEBUG=1.")
        ctx = AuditContext.command("seed_demo")
        credentials = self._credentials()
        with transaction.atomic():
            for username, role, teams in DEMO_USERS:
                full_name, grade = DEMO_DETAILS[username]
                email = f"{username}@{DEMO_EMAIL_DOMAIN}"
                user = User.objects.filter(username=username).first()
                if user is None:
                    user_create_or_update(
                        ctx=ctx,
                        username=username,
                        role=role,
                        team_names=teams,
                        password=credentials[username],
                        email=email,
                        full_name=full_name,
                        grade=grade,
                    )
                elif not user.email:  # seeded before demo users had addresses
                    user_update_details(ctx=ctx, user=user, email=email, full_name=user.full_name or full_name)
            self._example_case(ctx)
        self.stdout.write("Demo users (username / password / role / teams / email):")
        for username, role, teams in DEMO_USERS:
            self.stdout.write(
                f"  {username:8} {credentials[username]}  {role:13} {', '.join(teams) or '-'}"
                f"  {username}@{DEMO_EMAIL_DOMAIN}"
            )

    def _credentials(self) -> dict[str, str]:
        path = settings.DATA_DIR / "demo-credentials.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name, _role, _teams in DEMO_USERS if name not in stored]
        if missing:
            stored.update({name: secrets.token_urlsafe(12) for name in missing})
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(stored, handle, indent=2)
        return stored

    def _example_case(self, ctx: AuditContext) -> None:
        if Case.objects.filter(reference="DEMO-0001").exists():
            return
        alice = User.objects.get(username="alice")
        as_alice = AuditContext(actor=alice, via="command:seed_demo")
        case = case_services.case_create(
            ctx=as_alice, reference="DEMO-0001", title="Example family (demo data)", team=alice.teams.get()
        )
        result = case_services.subject_add_to_case(
            ctx=as_alice, case=case, display_name="Jane Example", relationship="parent", external_id="DEMO-P-1"
        )
        case_services.profile_register(
            ctx=as_alice, subject=result.subject, platform="facebook", handle="https://www.facebook.com/Jane.Example/"
        )
