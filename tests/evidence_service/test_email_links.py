"""The links in emails (``site_link``: ``SITE_URL`` + ``/flags/12/``, ``/authorisations/3/``,
``/viewings/7/``) lead somewhere: to the resource in the browsable API for someone signed
in, through the sign-in page for someone who is not. Before, every one of them was a 404."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client

from detection.notifications import site_link

LINKED = [
    ("/flags/12/", "/api/v1/flags/12/"),
    ("/authorisations/3/", "/api/v1/authorisations/3/"),
    ("/viewings/7/", "/api/v1/viewings/7/"),
]


@pytest.mark.parametrize(("link", "resource"), LINKED)
def test_an_email_link_takes_someone_not_signed_in_to_the_sign_in_page_and_then_to_the_resource(db, link, resource):
    response = Client().get(link)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={quote(resource)}"


@pytest.mark.parametrize(("link", "resource"), LINKED)
def test_an_email_link_takes_someone_signed_in_to_the_resource(olivia, link, resource):
    client = Client()
    client.force_login(olivia)
    response = client.get(link)
    assert response.status_code == 302 and response["Location"] == resource


def test_the_links_built_for_emails_are_the_ones_that_lead_somewhere(db, settings):
    settings.SITE_URL = "https://council.example"
    for link, _resource in LINKED:
        assert site_link(link) == f"https://council.example{link}"


@pytest.mark.parametrize("link", ["/flags/x/", "/flags/12/extra/", "/cases/1/"])
def test_what_is_not_an_email_link_is_still_not_found(db, link):
    assert Client().get(link).status_code == 404
