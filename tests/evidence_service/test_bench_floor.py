"""The load benchmark's floor endpoint: off unless BENCH_FLOOR_ENDPOINT, and a bare insert."""

import pytest
from django.db import connection
from rest_framework.test import APIRequestFactory, force_authenticate

from bench.floor import CREATE_TABLE, TABLE, FloorViewingCreateApi

ROW = {
    "case": 1,
    "profile": 2,
    "purpose": "locate_person",
    "justification": "To tell her about the hearing",
    "access_method": "council_overt_account",
    "interaction": "none",
    "information_recorded": "",
    "third_party_information": "",
}


def test_the_floor_endpoint_is_not_served_unless_switched_on(alice, client_for, settings):
    assert settings.BENCH_FLOOR_ENDPOINT is False
    assert client_for(alice).post("/bench/floor/viewings/", ROW, format="json").status_code == 404


def test_the_floor_endpoint_is_not_in_the_schema(db):
    from rest_framework.test import APIClient

    assert "/bench/" not in APIClient().get("/api/v1/schema/?format=json").content.decode()


@pytest.mark.postgres
def test_the_floor_endpoint_inserts_one_row_and_nothing_else(alice):
    from audit.models import AuditEvent

    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)
    request = APIRequestFactory().post("/bench/floor/viewings/", ROW, format="json")
    force_authenticate(request, user=alice)
    response = FloorViewingCreateApi.as_view()(request)
    assert response.status_code == 201
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT practitioner_id, purpose FROM {TABLE}")  # noqa: S608
        assert cursor.fetchall() == [(alice.pk, "locate_person")]
    assert not AuditEvent.objects.exists()
