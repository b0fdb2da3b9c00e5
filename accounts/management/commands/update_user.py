"""python manage.py update_user USERNAME [--email ADDRESS] [--full-name "FULL NAME"] [--grade "GRADE"]

Changes an existing user's email address, full name or grade; an option left out keeps
its value, an empty string clears it. Audited as user.update with the old and new values."""

from django.core.management.base import BaseCommand, CommandError

from accounts.management.commands.create_user import add_detail_arguments, command_error
from accounts.models import User
from accounts.services import user_update_details
from audit.services import AuditContext
from evidence_service.api.errors import ServiceError


class Command(BaseCommand):
    help = "Change a user's email address, full name or grade."

    def add_arguments(self, parser):
        parser.add_argument("username")
        add_detail_arguments(parser)

    def handle(self, *args, username, email=None, full_name=None, grade=None, **options):
        if email is None and full_name is None and grade is None:
            raise CommandError("Give at least one of --email, --full-name, --grade.")
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        try:
            changes = user_update_details(
                ctx=AuditContext.command("update_user"), user=user, email=email, full_name=full_name, grade=grade
            )
        except ServiceError as exc:
            raise command_error(exc) from exc
        if changes:
            self.stdout.write(self.style.SUCCESS(f"Updated {username}: {', '.join(sorted(changes))}"))
        else:
            self.stdout.write(f"Nothing to change for {username}.")
