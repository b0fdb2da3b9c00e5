from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "detection"
    verbose_name = "Detection policy, flags and notifications"

    def ready(self) -> None:
        from detection import checks  # noqa: F401  (registers the SITE_URL check)
