from django.apps import AppConfig


class AuthorisationsConfig(AppConfig):
    name = "authorisations"
    verbose_name = "Authorisations"
