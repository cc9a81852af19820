"""Which client an anonymous request counts against: its address, as the network sees it.

``X-Forwarded-For`` is believed only as far as it was written by proxies we trust (explicit
networks; never "every proxy"): walking it from the right, past our own proxies, the first
address is the client. Anything else in the header was written by the client and ignored.
An IPv6 client owns a whole /64 (one host can change addresses within it at will), so that
prefix is what is counted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from settings import IpNetwork

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPV6_CLIENT_PREFIX = 64
_MAX_PEER_CHARS = 64


def _parse_address(text: str) -> IpAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:443"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IpAddress, trusted: Sequence[IpNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IpNetwork]
) -> IpAddress | None:
    """The client's address, or ``None`` when the peer is not an IP (a unix socket)."""
    address = _parse_address(peer or "")
    if address is None or not forwarded_for or not _is_trusted(address, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")):
        forwarded = _parse_address(hop)
        if forwarded is None:
            # A trusted proxy wrote junk (or nothing usable): count the proxy's last hop.
            return address
        if not _is_trusted(forwarded, trusted):
            return forwarded
        address = forwarded
    return address


def client_identity(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IpNetwork]
) -> str:
    """The bucket and quota key of an anonymous client: ``ip:<v4>`` or ``ip:<v6 /64>``."""
    address = client_address(peer, forwarded_for, trusted)
    if address is None:
        return f"peer:{(peer or 'unknown')[:_MAX_PEER_CHARS]}"
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
        return f"ip:{network}"
    return f"ip:{address}"
