"""Normalising social media profile identifiers.

A practitioner may paste a profile's address or type its handle; both must land on the
same profile, so ``https://www.facebook.com/Jane.Doe/`` and ``jane.doe`` on Facebook are
one profile. Each platform has its own rules for which part of the address names the
account and whether case matters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


class ProfileAddressError(ValueError):
    """The handle or address does not name a profile on the platform."""


@dataclass(frozen=True)
class NormalisedProfile:
    handle: str
    url: str


@dataclass(frozen=True)
class _Platform:
    label: str
    hosts: frozenset[str]
    handle_from_path: Callable[[list[str], dict[str, list[str]]], str | None]
    clean_handle: Callable[[str], str | None]
    url_for: Callable[[str], str]
    #: What an address on the platform is when it is not a profile (a group, a post...), by
    #: its host and path segments (lower case); None when it may be a profile.
    not_a_profile: Callable[[str, list[str]], str | None] = lambda host, segments: None


def _refusing(
    *,
    short_hosts: dict[str, str] | None = None,
    first: dict[str, str] | None = None,
    second: dict[str, str] | None = None,
) -> Callable[[str, list[str]], str | None]:
    """``not_a_profile`` from what a host (a short-link or video domain), a first path segment
    (``groups``) or a second one (``user/status``) means when it is not a profile."""

    def what(host: str, segments: list[str]) -> str | None:
        for short, meaning in (short_hosts or {}).items():
            if host == short or host.endswith("." + short):
                return meaning
        if segments and segments[0] in (first or {}):
            return (first or {})[segments[0]]
        if len(segments) >= 2 and segments[1] in (second or {}):
            return (second or {})[segments[1]]
        return None

    return what


_FACEBOOK_NOT_PROFILES = {
    "groups": "a group",
    "pages": "a page",
    "events": "an event",
    "photo.php": "a photo",
    "photo": "a photo",
    "photos": "a photo",
    "story.php": "a post",
    "permalink.php": "a post",
    "posts": "a post",
    "watch": "a video",
    "video.php": "a video",
    "videos": "a video",
    "reel": "a reel",
    "reels": "a reel",
    "stories": "a story",
    "share": "a shared link",
    "sharer": "a shared link",
    "sharer.php": "a shared link",
    "marketplace": "a marketplace listing",
    "hashtag": "a hashtag",
    "gaming": "a gaming page",
    "notes": "a note",
    "media": "a photo album",
    "l.php": "a link",
    "login": "the sign-in page",
    "login.php": "the sign-in page",
    "home.php": "the home page",
    "search": "a search",
    "messages": "messages",
    "help": "a help page",
}
_INSTAGRAM_NOT_PROFILES = {
    "p": "a post",
    "reel": "a reel",
    "reels": "a reel",
    "tv": "a video",
    "stories": "a story",
    "explore": "the explore page",
    "accounts": "an account page",
    "direct": "messages",
}
_X_NOT_PROFILES = {
    "i": "a post or page that is not a profile",
    "home": "the home page",
    "search": "a search",
    "hashtag": "a hashtag",
    "intent": "a sharing link",
    "share": "a sharing link",
    "explore": "the explore page",
    "messages": "messages",
    "settings": "settings",
    "notifications": "notifications",
    "login": "the sign-in page",
}


def _first_segment(segments: list[str], query: dict[str, list[str]]) -> str | None:
    return segments[0] if segments else None


def _after(prefix: str) -> Callable[[list[str], dict[str, list[str]]], str | None]:
    def pick(segments: list[str], query: dict[str, list[str]]) -> str | None:
        if len(segments) >= 2 and segments[0].lower() == prefix:
            return segments[1]
        return None

    return pick


def _pattern(regex: str, *, lower: bool = True, strip_at: bool = True) -> Callable[[str], str | None]:
    compiled = re.compile(regex)

    def clean(value: str) -> str | None:
        if strip_at:
            value = value.lstrip("@")
        if lower:
            value = value.lower()
        return value if compiled.fullmatch(value) else None

    return clean


def _facebook_from_path(segments: list[str], query: dict[str, list[str]]) -> str | None:
    if not segments:
        return None
    if segments[0].lower() == "profile.php":
        ids = query.get("id")
        return ids[0] if ids else None
    if segments[0].lower() == "people" and len(segments) >= 3:
        return segments[2]
    return segments[0]


def _facebook_clean(value: str) -> str | None:
    """A Facebook username without its dots (Facebook ignores them: ``bea.king.7`` is
    ``beaking7``), or a numeric profile id."""
    value = value.lstrip("@").lower()
    if not re.fullmatch(r"[a-z0-9.]{1,50}", value):
        return None
    handle = value.replace(".", "")
    return handle or None


def _facebook_url(handle: str) -> str:
    if handle.isdigit():
        return f"https://www.facebook.com/profile.php?id={handle}"
    return f"https://www.facebook.com/{handle}"


def _tiktok_from_path(segments: list[str], query: dict[str, list[str]]) -> str | None:
    if segments and segments[0].startswith("@"):
        return segments[0]
    return None


def _youtube_from_path(segments: list[str], query: dict[str, list[str]]) -> str | None:
    if not segments:
        return None
    if segments[0].startswith("@"):
        return segments[0]
    if len(segments) >= 2 and segments[0].lower() in ("channel", "c", "user"):
        return f"{segments[0].lower()}/{segments[1]}"
    return None


_YOUTUBE_CHANNEL = re.compile(r"UC[A-Za-z0-9_-]{22}")
_YOUTUBE_NAME = re.compile(r"[a-z0-9._-]{3,100}")


def _youtube_clean(value: str) -> str | None:
    if value.startswith("channel/"):
        channel = value.split("/", 1)[1]
        return f"channel/{channel}" if _YOUTUBE_CHANNEL.fullmatch(channel) else None
    if _YOUTUBE_CHANNEL.fullmatch(value):
        return f"channel/{value}"
    for prefix in ("c/", "user/"):
        if value.lower().startswith(prefix):
            name = value[len(prefix) :].lower()
            return f"{prefix}{name}" if _YOUTUBE_NAME.fullmatch(name) else None
    name = value.lstrip("@").lower()
    return f"@{name}" if _YOUTUBE_NAME.fullmatch(name) else None


def _hosts(*names: str) -> frozenset[str]:
    return frozenset(names)


PLATFORMS: dict[str, _Platform] = {
    "facebook": _Platform(
        "Facebook",
        # fb.me/<name> and fb.com/<name> are Facebook's own short forms of a profile's address.
        _hosts("facebook.com", "m.facebook.com", "web.facebook.com", "mbasic.facebook.com", "fb.com", "fb.me"),
        _facebook_from_path,
        # Usernames: letters, digits and dots (ignored); a numeric value is a profile id.
        _facebook_clean,
        _facebook_url,
        _refusing(
            short_hosts={"fb.watch": "a video", "fb.gg": "a gaming page"},
            first=_FACEBOOK_NOT_PROFILES,
            second=_FACEBOOK_NOT_PROFILES,
        ),
    ),
    "instagram": _Platform(
        "Instagram",
        _hosts("instagram.com", "instagr.am"),
        _first_segment,
        _pattern(r"[a-z0-9._]{1,30}"),
        lambda h: f"https://www.instagram.com/{h}/",
        _refusing(first=_INSTAGRAM_NOT_PROFILES, second=_INSTAGRAM_NOT_PROFILES),
    ),
    "x": _Platform(
        "X",
        # Mirrors that show X's pages under another name (for link previews) name the same accounts.
        _hosts(
            "x.com",
            "twitter.com",
            "mobile.twitter.com",
            "mobile.x.com",
            "fxtwitter.com",
            "vxtwitter.com",
            "fixupx.com",
            "fixvx.com",
            "t.co",
        ),
        _first_segment,
        _pattern(r"[a-z0-9_]{1,15}"),
        lambda h: f"https://x.com/{h}",
        _refusing(
            short_hosts={"t.co": "a short link"},
            first=_X_NOT_PROFILES,
            second={"status": "a post", "statuses": "a post", "photo": "a post", "lists": "a list"},
        ),
    ),
    "tiktok": _Platform(
        "TikTok",
        _hosts("tiktok.com", "m.tiktok.com", "vm.tiktok.com", "vt.tiktok.com"),
        _tiktok_from_path,
        _pattern(r"[a-z0-9._]{2,24}"),
        lambda h: f"https://www.tiktok.com/@{h}",
        _refusing(
            short_hosts={
                "vm.tiktok.com": "a short link",
                "vt.tiktok.com": "a short link",
            },
            first={
                "t": "a short link",
                "tag": "a hashtag",
                "discover": "a search",
                "music": "a sound",
            },
            second={"video": "a video", "photo": "a post", "live": "a live stream"},
        ),
    ),
    "snapchat": _Platform(
        "Snapchat",
        _hosts("snapchat.com"),
        _after("add"),
        _pattern(r"[a-z0-9._-]{3,15}"),
        lambda h: f"https://www.snapchat.com/add/{h}",
        _refusing(first={"spotlight": "a video", "discover": "a story", "p": "a post"}),
    ),
    "youtube": _Platform(
        "YouTube",
        _hosts("youtube.com", "m.youtube.com", "youtu.be"),
        _youtube_from_path,
        _youtube_clean,
        lambda h: f"https://www.youtube.com/{h}",
        _refusing(
            short_hosts={"youtu.be": "a video"},
            first={
                "watch": "a video",
                "shorts": "a video",
                "playlist": "a playlist",
                "live": "a live stream",
                "embed": "a video",
                "results": "a search",
                "post": "a post",
                "hashtag": "a hashtag",
            },
        ),
    ),
    "linkedin": _Platform(
        "LinkedIn",
        _hosts("linkedin.com", "uk.linkedin.com", "lnkd.in"),
        _after("in"),
        _pattern(r"[a-z0-9-]{3,100}"),
        lambda h: f"https://www.linkedin.com/in/{h}",
        _refusing(
            short_hosts={"lnkd.in": "a short link"},
            first={
                "posts": "a post",
                "feed": "a post",
                "pulse": "an article",
                "company": "a company page",
                "school": "a school page",
                "groups": "a group",
                "events": "an event",
                "jobs": "a job",
            },
        ),
    ),
}

PLATFORM_CHOICES = [*PLATFORMS, "other"]


def _on_host(host: str, spec: _Platform) -> bool:
    """Whether ``host`` (lower case, without ``www.``) is one of the platform's, or a
    subdomain of one (``touch.facebook.com``, ``de-de.facebook.com``)."""
    return host in spec.hosts or any(host.endswith("." + known) for known in spec.hosts)


def platform_of_host(host: str) -> str | None:
    """The known platform whose address ``host`` is, if any."""
    host = host.lower().removeprefix("www.")
    return next((name for name, spec in PLATFORMS.items() if _on_host(host, spec)), None)


def _looks_like_url(value: str, platform: _Platform | None) -> bool:
    if "://" in value:
        return True
    head = value.split("/", 1)[0].lower().removeprefix("www.")
    if platform is None:
        return "." in head
    return _on_host(head, platform)


_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}")


def _split_url(value: str) -> tuple[str, list[str], dict[str, list[str]], str]:
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ProfileAddressError(f"That is not a valid address: {exc}.") from exc
    if parts.scheme.lower() not in ("http", "https") or not hostname or not _HOSTNAME.fullmatch(hostname):
        raise ProfileAddressError("Give the profile's handle or its http(s) address.")
    host = hostname.lower().removeprefix("www.")
    segments = [segment for segment in parts.path.split("/") if segment]
    return host, segments, parse_qs(parts.query), parts.query


def _is_profile_on(platform: str, value: str) -> bool:
    try:
        normalise_profile(platform, value)
    except ProfileAddressError:
        return False
    return True


def normalise_profile(platform: str, value: str) -> NormalisedProfile:
    """The canonical handle and address for ``value`` (a handle or a URL) on ``platform``."""
    value = (value or "").strip()
    if not value:
        raise ProfileAddressError("Give the profile's handle or address.")
    if len(value) > 500:
        raise ProfileAddressError("The handle or address is too long (500 characters at most).")
    if platform == "other":
        if not _looks_like_url(value, None):
            raise ProfileAddressError("For platform 'other', give the profile's full address.")
        host, segments, _query, raw_query = _split_url(value)
        known = platform_of_host(host)
        if known is not None:
            # Registered as "other", a known platform's profile would get a handle of its
            # own ("facebook.com/jane") and escape the rule that a profile belongs to one
            # person: the same account must be the same profile, however it was given. An
            # address there that is no profile (a group, a post, a short link) is no
            # profile as "other" either.
            if _is_profile_on(known, value):
                raise ProfileAddressError(
                    f"{host} is on {PLATFORMS[known].label}: register this profile with platform {known!r}, "
                    "not 'other'."
                )
            try:
                normalise_profile(known, value)
            except ProfileAddressError as exc:
                raise ProfileAddressError(f"{host} is on {PLATFORMS[known].label}: {exc}") from None
        handle = host + ("/" + "/".join(segments) if segments else "") + (f"?{raw_query}" if raw_query else "")
        return NormalisedProfile(handle=handle, url=f"https://{handle}")
    spec = PLATFORMS.get(platform)
    if spec is None:
        raise ProfileAddressError(f"Unknown platform {platform!r}.")
    if _looks_like_url(value, spec):
        host, segments, query, _raw = _split_url(value)
        if not _on_host(host, spec):
            raise ProfileAddressError(f"{host} is not a {spec.label} address.")
        refusal = spec.not_a_profile(host, [segment.lower() for segment in segments])
        if refusal is not None:
            raise ProfileAddressError(
                f"That {spec.label} address is {refusal}, not a profile: give the profile's address."
            )
        candidate = spec.handle_from_path(segments, query)
        if candidate is None:
            raise ProfileAddressError(f"That {spec.label} address does not point at a profile.")
    else:
        candidate = value
    handle = spec.clean_handle(candidate)
    if handle is None:
        raise ProfileAddressError(f"{candidate!r} is not a valid {spec.label} handle.")
    return NormalisedProfile(handle=handle, url=spec.url_for(handle))
