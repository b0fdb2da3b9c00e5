import pytest

from cases.profiles import ProfileAddressError, normalise_profile


@pytest.mark.parametrize(
    "platform, given, handle, url",
    [
        # Facebook ignores the dots in a username: the handle is kept without them.
        ("facebook", "https://www.facebook.com/Jane.Doe/", "janedoe", "https://www.facebook.com/janedoe"),
        ("facebook", "jane.doe", "janedoe", "https://www.facebook.com/janedoe"),
        ("facebook", "m.facebook.com/Jane.Doe?ref=bookmarks", "janedoe", "https://www.facebook.com/janedoe"),
        (
            "facebook",
            "https://www.facebook.com/profile.php?id=100004123456789",
            "100004123456789",
            "https://www.facebook.com/profile.php?id=100004123456789",
        ),
        ("instagram", "@Jane_Doe", "jane_doe", "https://www.instagram.com/jane_doe/"),
        ("instagram", "https://instagram.com/jane_doe/?hl=en", "jane_doe", "https://www.instagram.com/jane_doe/"),
        ("x", "https://twitter.com/JaneDoe", "janedoe", "https://x.com/janedoe"),
        ("x", "@JaneDoe", "janedoe", "https://x.com/janedoe"),
        ("tiktok", "https://www.tiktok.com/@jane.doe?lang=en", "jane.doe", "https://www.tiktok.com/@jane.doe"),
        ("tiktok", "@Jane.Doe", "jane.doe", "https://www.tiktok.com/@jane.doe"),
        ("snapchat", "https://www.snapchat.com/add/jane-doe", "jane-doe", "https://www.snapchat.com/add/jane-doe"),
        ("youtube", "https://www.youtube.com/@JaneDoe", "@janedoe", "https://www.youtube.com/@janedoe"),
        ("youtube", "janedoe", "@janedoe", "https://www.youtube.com/@janedoe"),
        (
            "youtube",
            "https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv",
            "channel/UCabcdefghijklmnopqrstuv",
            "https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv",
        ),
        (
            "linkedin",
            "https://uk.linkedin.com/in/Jane-Doe-123/",
            "jane-doe-123",
            "https://www.linkedin.com/in/jane-doe-123",
        ),
        (
            "other",
            "https://Forum.Example.org/users/Jane/",
            "forum.example.org/users/Jane",
            "https://forum.example.org/users/Jane",
        ),
    ],
)
def test_handles_and_addresses_normalise_to_one_profile(platform, given, handle, url):
    result = normalise_profile(platform, given)
    assert (result.handle, result.url) == (handle, url)


@pytest.mark.parametrize(
    "platform, given, message",
    [
        ("facebook", "https://www.instagram.com/jane", "not a Facebook address"),
        ("instagram", "jane doe", "not a valid Instagram handle"),
        ("x", "a_name_far_too_long_for_x", "not a valid X handle"),
        ("tiktok", "https://www.tiktok.com/video/123", "does not point at a profile"),
        ("linkedin", "https://www.linkedin.com/company/acme", "is a company page, not a profile"),
        ("other", "just-a-name", "full address"),
        ("instagram", "   ", "Give the profile"),
        ("instagram", "ftp://instagram.com/jane", "http"),
    ],
)
def test_bad_handles_are_refused_with_a_reason(platform, given, message):
    with pytest.raises(ProfileAddressError, match=message):
        normalise_profile(platform, given)
