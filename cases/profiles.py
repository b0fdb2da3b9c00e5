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
        _hosts("facebook.com", "m.facebook.com", "web.facebook.com", "mbasic.facebook.com", "fb.com"),
        _facebook_from_path,
        # Usernames: letters, digits and dots; a numeric value is a profile id.
        _pattern(r"[a-z0-9.]{1,50}"),
        _facebook_url,
    ),
    "instagram": _Platform(
        "Instagram",
        _hosts("instagram.com"),
        _first_segment,
        _pattern(r"[a-z0-9._]{1,30}"),
        lambda h: f"https://www.instagram.com/{h}/",
    ),
    "x": _Platform(
        "X",
        _hosts("x.com", "twitter.com", "mobile.twitter.com", "mobile.x.com"),
        _first_segment,
        _pattern(r"[a-z0-9_]{1,15}"),
        lambda h: f"https://x.com/{h}",
    ),
    "tiktok": _Platform(
        "TikTok",
        _hosts("tiktok.com", "m.tiktok.com"),
        _tiktok_from_path,
        _pattern(r"[a-z0-9._]{2,24}"),
        lambda h: f"https://www.tiktok.com/@{h}",
    ),
    "snapchat": _Platform(
        "Snapchat",
        _hosts("snapchat.com"),
        _after("add"),
        _pattern(r"[a-z0-9._-]{3,15}"),
        lambda h: f"https://www.snapchat.com/add/{h}",
    ),
    "youtube": _Platform(
        "YouTube",
        _hosts("youtube.com", "m.youtube.com"),
        _youtube_from_path,
        _youtube_clean,
        lambda h: f"https://www.youtube.com/{h}",
    ),
    "linkedin": _Platform(
        "LinkedIn",
        _hosts("linkedin.com", "uk.linkedin.com"),
        _after("in"),
        _pattern(r"[a-z0-9-]{3,100}"),
        lambda h: f"https://www.linkedin.com/in/{h}",
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
        if known is not None and _is_profile_on(known, value):
            # Registered as "other", a known platform's profile would get a handle of its
            # own ("facebook.com/jane") and escape the rule that a profile belongs to one
            # person: the same account must be the same profile, however it was given.
            # An address that platform's own rules do not take as a profile (a channel, a
            # short link) stays "other".
            raise ProfileAddressError(
                f"{host} is on {PLATFORMS[known].label}: register this profile with platform {known!r}, not 'other'."
            )
        handle = host + ("/" + "/".join(segments) if segments else "") + (f"?{raw_query}" if raw_query else "")
        return NormalisedProfile(handle=handle, url=f"https://{handle}")
    spec = PLATFORMS.get(platform)
    if spec is None:
        raise ProfileAddressError(f"Unknown platform {platform!r}.")
    if _looks_like_url(value, spec):
        host, segments, query, _raw = _split_url(value)
        if not _on_host(host, spec):
            raise ProfileAddressError(f"{host} is not a {spec.label} address.")
        candidate = spec.handle_from_path(segments, query)
        if candidate is None:
            raise ProfileAddressError(f"That {spec.label} address does not point at a profile.")
    else:
        candidate = value
    handle = spec.clean_handle(candidate)
    if handle is None:
        raise ProfileAddressError(f"{candidate!r} is not a valid {spec.label} handle.")
    return NormalisedProfile(handle=handle, url=spec.url_for(handle))
