"""python manage.py clear_login_failures [--username USERNAME] [--address IP]

Forgets the failed sign-ins the throttle has counted for a username (from every address),
for an address (every username), or for a username at one address, so that someone locked
out need not wait for the window (``LOGIN_FAILURE_WINDOW_SECONDS``) to pass. Audited as
``auth.login_failures_cleared``."""

from django.core.management.base import BaseCommand, CommandError

from accounts.services import login_failures_clear
from audit.services import AuditContext
from evidence_service.api.errors import ServiceError


class Command(BaseCommand):
    help = "Forget the failed sign-ins counted for a username, an address, or both."

    def add_arguments(self, parser):
        parser.add_argument("--username", help="Counted as the throttle counts it: case and surrounding space ignored.")
        parser.add_argument("--address", help="An IPv4 address, or an IPv6 address (its whole /64).")

    def handle(self, *args, username, address, **options):
        try:
            cleared = login_failures_clear(
                ctx=AuditContext.command("clear_login_failures"), username=username, ip=address
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Forgot {cleared} failed sign-in(s)."))
