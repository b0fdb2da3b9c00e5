"""python manage.py create_user USERNAME --role ROLE [--team NAME ...] --password PASS
       [--email ADDRESS] [--full-name "FULL NAME"] [--grade "GRADE"]

Creates the user (and any team not yet known), or updates an existing user's role, teams
and password (and the email address, full name and grade when given). Audited as
user.create / user.update. Notifications reach only users with an email address."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role
from accounts.services import user_create_or_update
from audit.services import AuditContext
from evidence_service.api.errors import ServiceError


def command_error(exc: ServiceError) -> CommandError:
    details = "; ".join(
        f"{field}: {msgs if isinstance(msgs, str) else ' '.join(msgs)}" for field, msgs in exc.fields.items()
    )
    return CommandError(f"{exc.message} {details}".strip())


def add_detail_arguments(parser) -> None:
    parser.add_argument("--email", help="Where notifications are sent (an empty string clears it).")
    parser.add_argument("--full-name", dest="full_name", help="The name the central record shows.")
    parser.add_argument(
        "--grade", help="An officer's post or grade, e.g. 'Head of Legal Services' (shown in the central record)."
    )


class Command(BaseCommand):
    help = "Create or update a user with a role, teams, email address, full name and grade."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--team", action="append", default=[], dest="teams", metavar="NAME")
        parser.add_argument("--password", help="Required for a new user; omit to keep an existing password.")
        add_detail_arguments(parser)

    def handle(self, *args, username, role, teams, password, email=None, full_name=None, grade=None, **options):
        try:
            user, created = user_create_or_update(
                ctx=AuditContext.command("create_user"),
                username=username,
                role=role,
                team_names=teams,
                password=password,
                email=email,
                full_name=full_name,
                grade=grade,
            )
        except ServiceError as exc:
            raise command_error(exc) from exc
        verb = "Created" if created else "Updated"
        team_list = ", ".join(sorted(t.name for t in user.teams.all())) or "no team"
        contact = user.email or "no email address"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.username} ({user.role}; {team_list}; {contact})"))
        if not user.email:
            self.stderr.write(
                self.style.WARNING(f"{user.username} has no email address: no notification can reach them (--email).")
            )
