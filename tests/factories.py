"""factory_boy factories for the domain. Objects made here bypass the services (and so
write no audit events); tests that check auditing act through the API."""

import factory
from django.utils import timezone

from accounts.models import Role, Team, User
from cases.identity import external_id_key
from cases.models import Case, CaseSubject, Consent, Profile, Subject


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@council.example")
    role = Role.PRACTITIONER
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def teams(self, create, extracted, **kwargs):
        if create and extracted:
            self.teams.set(extracted)
        self.save()


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    reference = factory.Sequence(lambda n: f"CASE-{n:05d}")
    title = "A family"
    team = factory.SubFactory(TeamFactory)
    created_by = factory.SubFactory(UserFactory)


class SubjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subject

    display_name = factory.Sequence(lambda n: f"Person {n}")
    created_by = factory.SubFactory(UserFactory)
    external_id = None
    external_key = factory.LazyAttribute(lambda s: external_id_key(s.external_id) or None if s.external_id else None)


class CaseSubjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CaseSubject

    case = factory.SubFactory(CaseFactory)
    subject = factory.SubFactory(SubjectFactory)
    relationship = "service_user"
    linked_by = factory.SelfAttribute("case.created_by")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    subject = factory.SubFactory(SubjectFactory)
    platform = "instagram"
    handle = factory.Sequence(lambda n: f"person.{n}")
    url = factory.LazyAttribute(lambda p: f"https://www.instagram.com/{p.handle}/")
    created_by = factory.SelfAttribute("subject.created_by")


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    subject = factory.SubFactory(SubjectFactory)
    scope = ["all"]
    granted_at = factory.LazyFunction(lambda: timezone.now() - timezone.timedelta(days=30))
    evidence = "Signed consent form on file"
    given_by = "subject"
    given_by_name = factory.SelfAttribute("subject.display_name")
    method = "written"
    # Confirmed by an officer unless a test says otherwise (awaiting_confirmation).
    status = "confirmed"
    recorded_by = factory.SelfAttribute("subject.created_by")
    # The team of the person's first case (else the recorder's first team), as recording it
    # through the API would give.
    team = factory.LazyAttribute(
        lambda consent: (
            (link.case.team if (link := consent.subject.case_links.order_by("id").first()) else None)
            or consent.recorded_by.teams.order_by("id").first()
        )
    )


class AuthorisationFactory(factory.django.DjangoModelFactory):
    """An application saved straight to the database (no audit events, no checks): for
    states the API would refuse to create, e.g. a RIPA application from before a change
    of settings."""

    class Meta:
        model = "authorisations.Authorisation"
        skip_postgeneration_save = True

    urn = factory.Sequence(lambda n: f"TEST-{n:05d}")
    type = "non_ripa"
    status = "draft"
    case = factory.SubFactory(CaseFactory)
    applicant = factory.SelfAttribute("case.created_by")
    title = "Test application"
    purpose = "To find out where the child is staying"
    information_sought = "Current location"
    necessity = "No other way"
    proportionality = "Least intrusive"
    alternatives_considered = "Phone calls"
    collateral_intrusion = "Friends' posts; not recorded"
    platforms = factory.LazyFunction(lambda: ["instagram"])

    @factory.post_generation
    def subjects(self, create, extracted, **kwargs):
        if create and extracted:
            self.subjects.set(extracted)
