"""The SSRF guard: a webhook URL may only reach public addresses.

Every address the host name resolves to is checked (a name with one public and one private address
is refused), at registration and again at every delivery, and the delivery connects to the very
address that was checked (webhooks.client pins it), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot point the request inside the network.

WEBHOOKS_ALLOW_PRIVATE_NETWORKS lists CIDRs ("10.0.0.0/8", "127.0.0.1/32") or host names
("receiver.internal") that are allowed anyway: the demo's local receiver, tests, an internal
integration you trust.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL may not be called: bad scheme, no host, or a non-public address."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (lower case, no brackets)
    port: int
    path: str  # path and query, at least "/"
    address: str  # the checked IP the connection must use


def _allowed_networks() -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]]:
    networks, hosts = [], set()
    for item in getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_NETWORKS", []):
        item = str(item).strip().lower()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item)
    return networks, hosts


def is_public(ip: IPAddress) -> bool:
    """Not private, loopback, link-local (169.254.169.254: cloud metadata), multicast, reserved, …"""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"The host name {host!r} does not resolve ({exc}).") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%")[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"The host name {host!r} does not resolve.")
    return addresses


def check_url(url: str) -> Target:
    """Resolve and check `url`; the Target names the address to connect to. Raises UnsafeUrl."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"This is not a valid URL ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("Use an http:// or https:// URL.")
    if parts.username or parts.password:
        raise UnsafeUrl("Put credentials in the receiver's check of the signature, not in the URL.")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl("The URL has no host name.")
    port = port or (443 if scheme == "https" else 80)
    networks, hosts = _allowed_networks()
    addresses = resolve(host, port)
    if host not in hosts:
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if not is_public(ip) and not any(ip in net for net in networks if net.version == ip.version):
                raise UnsafeUrl(
                    f"{host} resolves to {address}, a private, loopback, link-local or reserved address: "
                    "webhooks only call public addresses (a manager can allow a network in "
                    "WEBHOOKS_ALLOW_PRIVATE_NETWORKS)."
                )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])
