"""System checks for sending notifications."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.compatibility, deploy=True)
def site_url_set(app_configs, **kwargs):
    """Links in emails are built on SITE_URL: left at the local default, they lead nowhere."""
    if settings.SITE_URL == settings.SITE_URL_DEFAULT:
        return [
            Warning(
                f"SITE_URL is not set: links in notification emails point at {settings.SITE_URL_DEFAULT}.",
                hint="Set SITE_URL to the address people use to reach the service, e.g. https://evidence.council.example",
                id="detection.W001",
            )
        ]
    return []
