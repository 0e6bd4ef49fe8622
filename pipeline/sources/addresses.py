"""Which URLs and addresses a feed may send us to: http(s) only, no credentials, and no
loopback, private, link-local or multicast address unless MEDIA_TIMING_FETCH_ALLOW_NETWORKS
lists it (server-side request forgery: a feed URL must not reach the machine's own services)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pipeline.errors import UserError


class UnsupportedURL(UserError):
    pass


def check_url(url: str) -> str:
    """Only http and https, and no user or password in the URL: a feed URL can't make us read
    files, talk other protocols, or send credentials along."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL(f"{url!r} is not an http(s) URL; only http and https feeds are polled")
    if parts.username is not None or parts.password is not None:
        raise UnsupportedURL(f"{url!r} holds a user name or password; feeds are polled without credentials")
    return url.strip()


def parse_networks(text: str | None) -> tuple:
    """MEDIA_TIMING_FETCH_ALLOW_NETWORKS: comma-separated CIDRs (127.0.0.0/8,::1/128)."""
    out = []
    for part in (text or "").split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise UnsupportedURL(f"MEDIA_TIMING_FETCH_ALLOW_NETWORKS: {part.strip()!r} is not a network "
                                     "such as 127.0.0.0/8 or ::1/128") from None
    return tuple(out)


def forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: tuple = ()) -> str | None:
    """Why feeds may not reach this address (None: they may). Checked where libcurl connects, so
    a name that resolves to it, a redirect to it, or a numeric spelling of it are all caught."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allow):
        return None
    for kind, hit in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                      ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                      ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if hit:
            return kind
    return None


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
