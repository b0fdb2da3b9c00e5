"""A flag in a list is written out by hand (``FlagOutput.to_representation``) for speed; it
must say exactly what the declared fields say, which is what the OpenAPI schema documents.
Who may see which flag is checked here too, since the list reads through a semi-join."""

from rest_framework import serializers

from detection.api.views import FlagOutput
from detection.models import Flag
from detection.selectors import flag_list
from tests.detection.test_detection import look
from tests.factories import CaseSubjectFactory, ProfileFactory


def declared(flag) -> dict:
    """What DRF builds from the declared fields."""
    return dict(serializers.Serializer.to_representation(FlagOutput(flag), flag))


def test_flags_listed_say_what_their_declared_fields_say(
    alice, carol, olivia, sam, north_case, jane_profile, client_for, django_assert_num_queries
):
    alice_client, carol_client = client_for(alice), client_for(carol)
    look(alice_client, north_case, jane_profile, days_ago=1)
    look(alice_client, north_case, jane_profile, access_method="covert_identity", information_recorded="A photo.")
    other = CaseSubjectFactory(case=north_case, subject__created_by=carol).subject
    other_profile = ProfileFactory(subject=other)
    look(carol_client, north_case, other_profile, days_ago=1)
    look(carol_client, north_case, other_profile)
    flags = list(Flag.objects.order_by("id"))
    assert len(flags) >= 3
    decided = client_for(olivia).post(
        f"/api/v1/flags/{flags[0].pk}/decide/",
        {"outcome": "no_authorisation_needed", "reasoning": "One look to find the mother."},
        format="json",
    )
    assert decided.status_code == 200, decided.json()

    sam_client = client_for(sam)
    listed = sam_client.get("/api/v1/flags/?limit=100").json()["results"]
    assert [entry["id"] for entry in listed] == [flag.pk for flag in reversed(flags)]
    by_id = {flag.pk: flag for flag in Flag.objects.select_related("case", "decided_by")}
    for entry in listed:
        assert entry == declared(by_id[entry["id"]])
        assert entry == {key: value for key, value in FlagOutput(by_id[entry["id"]]).data.items()}
        detail = sam_client.get(f"/api/v1/flags/{entry['id']}/").json()
        assert {key: detail[key] for key in entry} == entry
    assert any(entry["decided_by"] == "olivia" and entry["decided_at"] for entry in listed)
    assert all(entry["routed_to"] for entry in listed)

    rows = list(Flag.objects.select_related("case", "decided_by").order_by("id"))
    with django_assert_num_queries(1):  # whom they are routed to, for all of them
        written = FlagOutput(rows, many=True).data
    assert [dict(entry) for entry in written] == [declared(flag) for flag in rows]

    # Each practitioner sees the flags on their own looks, once each, however many of their
    # looks a flag counts; an officer the flags routed to them; the SRO all.
    mine = {flag.pk for flag in flags if flag.flag_viewings.filter(viewing__practitioner=alice).exists()}
    assert mine and mine != {flag.pk for flag in flags}
    assert [flag.pk for flag in flag_list(user=alice).order_by("id")] == sorted(mine)
    routed = {flag.pk for flag in flags if flag.recipients.filter(officer=olivia).exists()}
    assert [flag.pk for flag in flag_list(user=olivia).order_by("id")] == sorted(routed)
    assert flag_list(user=sam).count() == len(flags)
