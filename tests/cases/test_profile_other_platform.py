"""Platform ``other`` is for sites without a platform of their own: an address on a known
platform given as ``other`` would become a second profile of the same account and get
round the rule that a profile belongs to one person."""

import pytest

from audit.models import AuditEvent
from cases.models import Profile
from cases.profiles import ProfileAddressError, normalise_profile
from tests.factories import CaseSubjectFactory


@pytest.fixture
def bobs_person(south_case):
    return CaseSubjectFactory(
        case=south_case, subject__display_name="Vic Tim", subject__created_by=south_case.created_by
    )


def register(client, subject, platform, handle):
    return client.post(
        f"/api/v1/subjects/{subject.pk}/profiles/", {"platform": platform, "handle": handle}, format="json"
    )


@pytest.fixture
def victim(bob, bobs_person, client_for):
    """bob's person has the Facebook profile "victim"."""
    response = register(client_for(bob), bobs_person.subject, "facebook", "victim")
    assert response.status_code == 201
    return Profile.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize(
    "address",
    [
        "https://www.facebook.com/victim",
        "facebook.com/victim",
        "http://m.facebook.com/victim?ref=bookmarks",
        "https://mobile.facebook.com/victim",
        "https://touch.facebook.com/victim/",
    ],
)
def test_another_persons_facebook_profile_given_as_other_is_refused(alice, jane, victim, address, client_for):
    client = client_for(alice)
    # As "facebook" it is correctly another person's profile...
    assert register(client, jane, "facebook", address).status_code == 409
    # ... and as "other" it is no new profile either.
    response = register(client, jane, "other", address)
    assert response.status_code == 400
    body = response.json()
    assert list(body["fields"]) == ["handle"] and "platform 'facebook'" in body["fields"]["handle"][0]
    assert list(Profile.objects.values_list("platform", "handle")) == [("facebook", "victim")]
    assert not AuditEvent.objects.filter(action="profile.create", actor_username="alice").exists()


def test_the_owner_giving_it_as_other_is_refused_and_as_facebook_is_the_same_profile(
    bob, bobs_person, victim, client_for
):
    client = client_for(bob)
    refused = register(client, bobs_person.subject, "other", "https://www.facebook.com/victim")
    assert refused.status_code == 400 and list(refused.json()["fields"]) == ["handle"]
    again = register(client, bobs_person.subject, "facebook", "https://touch.facebook.com/victim")
    assert again.status_code == 200 and again.json()["id"] == victim.pk
    assert Profile.objects.count() == 1


def test_the_refusal_does_not_say_whether_the_profile_is_registered(alice, jane, victim, client_for):
    client = client_for(alice)
    known = register(client, jane, "other", "https://www.facebook.com/victim")
    unknown = register(client, jane, "other", "https://www.facebook.com/nobody.yet")
    assert known.status_code == unknown.status_code == 400
    assert known.json()["fields"] == unknown.json()["fields"]
    assert not AuditEvent.objects.filter(action="request.conflict").exists()


def test_a_genuinely_other_site_stays_other(alice, jane, victim, client_for):
    client = client_for(alice)
    for address, handle in [
        ("https://forum.example.org/users/victim", "forum.example.org/users/victim"),
        ("https://notfacebook.com/victim", "notfacebook.com/victim"),
        ("https://facebook.com.example.net/victim", "facebook.com.example.net/victim"),
    ]:
        response = register(client, jane, "other", address)
        assert response.status_code == 201, response.content
        assert (response.json()["platform"], response.json()["handle"]) == ("other", handle)
    assert AuditEvent.objects.filter(action="profile.create", actor_username="alice").count() == 3


@pytest.mark.parametrize(
    "address, platform",
    [
        ("https://www.instagram.com/victim/", "instagram"),
        ("https://twitter.com/victim", "x"),
        ("https://mobile.x.com/victim", "x"),
        ("https://www.tiktok.com/@victim", "tiktok"),
        ("https://www.snapchat.com/add/victim", "snapchat"),
        ("https://www.youtube.com/@victim", "youtube"),
        ("https://uk.linkedin.com/in/victim", "linkedin"),
        ("https://fb.com/victim", "facebook"),
    ],
)
def test_every_known_platforms_addresses_are_refused_as_other(address, platform):
    with pytest.raises(ProfileAddressError, match=f"platform '{platform}'"):
        normalise_profile("other", address)
    normalise_profile(platform, address)  # and are accepted on their own platform


def test_an_address_on_a_known_platform_that_is_no_profile_is_not_taken_as_other_either():
    # Before issue 18 these stayed "other": a short link or a group then became a "profile"
    # of its own, a second record of an account (or of no account at all).
    from cases.profiles import ProfileAddressError, normalise_profile

    for address in (
        "https://www.youtube.com/channel/UCabc123",
        "https://vm.tiktok.com/ZMabc/",
        "https://www.facebook.com/groups/123456",
        "https://instagr.am/p/Cabc/",
    ):
        with pytest.raises(ProfileAddressError):
            normalise_profile(platform_of(address), address)
        with pytest.raises(ProfileAddressError, match="is on"):
            normalise_profile("other", address)


def platform_of(address: str) -> str:
    from cases.profiles import platform_of_host

    host = address.split("//")[1].split("/")[0].removeprefix("www.")
    return platform_of_host(host)
