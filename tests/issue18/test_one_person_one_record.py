"""Issue 18, evasions 6 and 7: one person is one record, and one account one profile,
however the id or the address is typed."""

import pytest

from audit.models import AuditEvent
from cases.models import CaseSubject, Profile, Subject
from tests.factories import CaseFactory, SubjectFactory


def add(client, case, **body):
    return client.post(
        f"/api/v1/cases/{case.pk}/subjects/",
        {"relationship": "parent", "display_name": "Bea King", **body},
        format="json",
    )


def register(client, subject_id, platform, handle):
    return client.post(
        f"/api/v1/subjects/{subject_id}/profiles/", {"platform": platform, "handle": handle}, format="json"
    )


@pytest.mark.parametrize(
    "variant",
    ["nhs 9434765919", "9434765919", "nhs\u200b9434765919", "NHS.943.476.5919", "\uff2e\uff28\uff33-9434765919"],
    ids=["lower-space", "digits-only", "zero-width-space", "dots", "full-width"],
)
def test_variants_of_an_external_id_are_one_person(alice, north, north_case, client_for, variant):
    client = client_for(alice)
    first = add(client, north_case, external_id="NHS-9434765919", date_of_birth="1990-02-01")
    assert first.status_code == 201
    other_case = CaseFactory(reference="N-2", team=north, created_by=alice)
    again = add(client, other_case, external_id=variant, date_of_birth="1990-02-01")
    assert again.status_code == 201, again.json()
    assert again.json()["id"] == first.json()["id"] and again.json()["existing_subject"] is True
    assert Subject.objects.count() == 1
    # The id is kept as first given, for display; the key is what is compared.
    assert Subject.objects.get().external_id == "NHS-9434765919"
    assert Subject.objects.get().external_key == "9434765919"


def test_another_scheme_prefix_is_not_dropped():
    from cases.identity import external_id_key

    # Only "NHS" before ten digits is taken as the scheme's name: the digits alone do not
    # say which scheme another prefix's id belongs to.
    assert external_id_key("CHI-0101901234") == "chi0101901234" != external_id_key("0101901234")
    assert external_id_key("NHS-12345") == "nhs12345"


def test_an_external_id_of_separators_only_is_refused_naming_the_field(alice, north_case, client_for):
    response = add(client_for(alice), north_case, external_id="-\u200b. -")
    assert response.status_code == 400 and list(response.json()["fields"]) == ["external_id"]
    assert not Subject.objects.exists()


def test_a_new_person_with_the_name_and_birth_date_of_one_the_team_has_answers_409_pointing_at_them(
    alice, north, north_case, client_for
):
    client = client_for(alice)
    first = add(client, north_case, display_name="Bea King", date_of_birth="2001-05-06").json()
    other_case = CaseFactory(reference="N-2", team=north, created_by=alice)
    response = add(client, other_case, display_name="  bea   KING ", date_of_birth="2001-05-06")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "possible_duplicate" and body["existing_subject"] == first["id"]
    assert "display_name" in body["fields"]
    assert Subject.objects.count() == 1 and CaseSubject.objects.count() == 1


def test_force_without_a_reason_is_refused_naming_force_reason(alice, north_case, client_for):
    client = client_for(alice)
    add(client, north_case, date_of_birth="2001-05-06")
    response = add(client, north_case, date_of_birth="2001-05-06", force=True)
    assert response.status_code == 400 and list(response.json()["fields"]) == ["force_reason"]
    assert Subject.objects.count() == 1


def test_force_with_a_reason_records_a_different_person_and_audits_the_reason(alice, north_case, client_for):
    client = client_for(alice)
    first = add(client, north_case, date_of_birth="2001-05-06").json()
    response = add(client, north_case, date_of_birth="2001-05-06", force=True, force_reason="Cousin, same name")
    assert response.status_code == 201 and response.json()["id"] != first["id"]
    event = AuditEvent.objects.get(action="subject.create", target_id=str(response.json()["id"]))
    assert event.payload["forced"] is True and event.payload["force_reason"] == "Cousin, same name"


def test_a_name_and_birth_date_known_only_to_another_team_reveal_nothing(alice, bob, south_case, client_for):
    SubjectFactory(display_name="Bea King", date_of_birth="2001-05-06", created_by=bob)
    response = add(
        client_for(alice),
        CaseFactory(reference="N-9", team=alice.teams.get(), created_by=alice),
        date_of_birth="2001-05-06",
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "platform, first, second",
    [
        ("facebook", "beaking7", "bea.king.7"),
        ("facebook", "https://www.facebook.com/bea.king.7", "fb.me/beaking7"),
        ("facebook", "beaking7", "https://mbasic.facebook.com/Bea.King.7?ref=x"),
        ("facebook", "beaking7", "https://web.facebook.com/beaking7/"),
        ("facebook", "100012345678", "https://m.facebook.com/profile.php?id=100012345678&ref=y"),
        ("instagram", "bea_king", "https://instagr.am/bea_king"),
        ("x", "beaking", "https://mobile.twitter.com/BeaKing"),
        ("x", "beaking", "https://twitter.com/beaking"),
        ("x", "beaking", "https://fxtwitter.com/beaking"),
        ("youtube", "@beaking", "https://m.youtube.com/@BeaKing"),
    ],
)
def test_one_account_however_given_is_one_profile(alice, jane, client_for, platform, first, second):
    client = client_for(alice)
    created = register(client, jane.pk, platform, first)
    assert created.status_code == 201, created.json()
    again = register(client, jane.pk, platform, second)
    assert again.status_code == 200, again.json()
    assert again.json()["id"] == created.json()["id"]
    assert Profile.objects.filter(platform=platform).count() == 1


@pytest.mark.parametrize("address", ["https://fb.me/beaking7", "https://instagr.am/bea_king", "m.facebook.com/bea"])
def test_short_and_mirror_domains_are_not_platform_other(alice, jane, client_for, address):
    response = register(client_for(alice), jane.pk, "other", address)
    assert response.status_code == 400 and list(response.json()["fields"]) == ["handle"]
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    "platform, address, what",
    [
        ("facebook", "https://www.facebook.com/groups/123456789", "group"),
        ("facebook", "facebook.com/groups/parents.of.leeds/", "group"),
        ("facebook", "https://www.facebook.com/bea.king.7/posts/pfbid0abc", "post"),
        ("facebook", "https://www.facebook.com/photo.php?fbid=1", "photo"),
        ("facebook", "https://www.facebook.com/events/12345/", "event"),
        ("facebook", "https://www.facebook.com/reel/12345", "reel"),
        ("facebook", "https://www.facebook.com/pages/Bea/12345", "page"),
        ("facebook", "https://www.facebook.com/stories/12345", "story"),
        ("instagram", "https://www.instagram.com/p/Cabc123/", "post"),
        ("instagram", "https://www.instagram.com/reel/Cabc123/", "reel"),
        ("instagram", "https://www.instagram.com/stories/bea_king/1/", "story"),
        ("x", "https://x.com/beaking/status/1234567890", "post"),
        ("x", "https://twitter.com/beaking/status/1234567890", "post"),
        ("tiktok", "https://www.tiktok.com/@beaking/video/7234567890", "video"),
        ("tiktok", "https://vm.tiktok.com/ZMabc/", "short link"),
        ("youtube", "https://youtu.be/dQw4w9WgXcQ", "video"),
        ("youtube", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "video"),
    ],
)
def test_groups_posts_and_pages_are_refused_as_profiles_naming_the_field(
    alice, jane, client_for, platform, address, what
):
    for given_as in (platform, "other"):
        response = register(client_for(alice), jane.pk, given_as, address)
        assert response.status_code == 400, (given_as, response.json())
        body = response.json()
        assert list(body["fields"]) == ["handle"] and what in body["fields"]["handle"][0]
    assert not Profile.objects.exists()


def test_existing_ids_get_their_key_and_two_that_collide_are_both_kept(alice, capsys):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("cases.migrations.0006_identity_and_consent_team")
    # As before the key existed.
    first = SubjectFactory(external_id="NHS-9434765919", external_key=None, created_by=alice)
    second = SubjectFactory(external_id="nhs 9434765919", external_key=None, created_by=alice)
    third = SubjectFactory(external_id="LCS-1", external_key=None, created_by=alice)
    migration.give_keys(apps, None)
    keys = dict(Subject.objects.values_list("pk", "external_key"))
    assert keys == {first.pk: "9434765919", second.pk: None, third.pk: "lcs1"}
    assert f"subject {second.pk}" in capsys.readouterr().out
    assert Subject.objects.count() == 3


def test_existing_dotted_facebook_handles_lose_their_dots_unless_two_collide(jane, capsys):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("cases.migrations.0007_facebook_handles_without_dots")
    lone = Profile.objects.create(
        subject=jane, platform="facebook", handle="jane.doe", url="https://x", created_by=jane.created_by
    )
    kept = Profile.objects.create(
        subject=jane, platform="facebook", handle="bea.king.7", url="https://y", created_by=jane.created_by
    )
    plain = Profile.objects.create(
        subject=jane, platform="facebook", handle="beaking7", url="https://z", created_by=jane.created_by
    )
    migration.drop_dots(apps, None)
    handles = dict(Profile.objects.values_list("pk", "handle"))
    assert handles == {lone.pk: "janedoe", kept.pk: "bea.king.7", plain.pk: "beaking7"}
    assert f"profile {kept.pk}" in capsys.readouterr().out
