"""Where outbound webhooks may go: no server-side request forgery.

A URL is refused when its host resolves to a private, loopback, link-local or otherwise non-public
address (IPv4 or IPv6, including IPv4-mapped IPv6), unless private targets are allowed (development
and tests). The check runs when an endpoint is registered and again when each connection is
opened, on the very addresses connected to, so a DNS answer that changes later changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from loyalty.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(Exception):
    """The target resolves to an address outbound webhooks must not reach, or does not resolve."""


def is_public(address: IPAddress) -> bool:
    """Whether an address is on the public internet (not private, loopback, link-local, …)."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 reaches 10.0.0.1; 6to4 and Teredo wrap IPv4 addresses too.
        mapped = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if mapped is not None and not is_public(mapped):
            return False
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to; an IP literal resolves to itself without asking DNS."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"{host} does not resolve: {exc}") from None
    # The scope id of a link-local IPv6 answer ("fe80::1%eth0") is not part of the address.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def refuse_private(host: str, addresses: Iterable[IPAddress]) -> None:
    """Raise UnsafeTarget if any address is not public: one private answer among public ones
    is enough for a request to land inside the network."""
    for address in addresses:
        if not is_public(address):
            raise UnsafeTarget(
                f"{host} resolves to {address}, a private, loopback, link-local or reserved address"
            )


async def check_url(url: str, *, allow_private: bool) -> None:
    """Validate a webhook URL for registration; InvalidInput naming `url` when it is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an absolute http or https URL", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url must not carry credentials", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput("url has an invalid port", field="url") from None
    if allow_private:
        return
    try:
        refuse_private(parts.hostname, await resolve(parts.hostname, port))
    except UnsafeTarget as exc:
        raise InvalidInput(f"url refused: {exc}", field="url") from None
