"""python manage.py create_user USERNAME --role ROLE [--team NAME ...] --password PASS

Creates the user (and any team not yet known), or updates an existing user's role, teams
and password. Audited as user.create / user.update."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role
from accounts.services import user_create_or_update
from audit.services import AuditContext
from evidence_service.api.errors import ServiceError


class Command(BaseCommand):
    help = "Create or update a user with a role and teams."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--team", action="append", default=[], dest="teams", metavar="NAME")
        parser.add_argument("--password", help="Required for a new user; omit to keep an existing password.")

    def handle(self, *args, username, role, teams, password, **options):
        try:
            user, created = user_create_or_update(
                ctx=AuditContext.command("create_user"),
                username=username,
                role=role,
                team_names=teams,
                password=password,
            )
        except ServiceError as exc:
            details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.fields.items())
            raise CommandError(f"{exc.message} {details}".strip()) from exc
        verb = "Created" if created else "Updated"
        team_list = ", ".join(sorted(t.name for t in user.teams.all())) or "no team"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.username} ({user.role}; {team_list})"))
