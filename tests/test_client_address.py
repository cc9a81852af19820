"""Anonymous clients are counted by the address the network gives them: X-Forwarded-For only
as written by explicitly trusted proxies, a valid IP, IPv6 per /64."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.public.client_address import client_identity
from settings import ConfigurationError, load_settings, parse_trusted_proxies

PROXIES = parse_trusted_proxies("10.0.0.0/8, 2001:db8:ffff::/48")


def test_forwarded_for_counts_only_as_far_as_trusted_proxies_wrote_it() -> None:
    assert client_identity("10.0.0.5", "198.51.100.7", PROXIES) == "ip:198.51.100.7"
    # The client prepended fake hops: the proxy's own entry (rightmost untrusted) wins.
    spoofed = "1.2.3.4, 5.6.7.8, 198.51.100.7"
    assert client_identity("10.0.0.5", spoofed, PROXIES) == "ip:198.51.100.7"
    # Through two of our proxies.
    assert client_identity("10.0.0.5", "198.51.100.7, 10.1.2.3", PROXIES) == "ip:198.51.100.7"
    # Not from a trusted proxy: the header is the client's own claim and is ignored.
    assert client_identity("203.0.113.9", "198.51.100.7", PROXIES) == "ip:203.0.113.9"


def test_a_forwarded_entry_that_is_not_an_ip_never_becomes_an_identity() -> None:
    for junk in ("evil", "x" * 300, "1.2.3.4.5", "", "   "):
        assert client_identity("10.0.0.5", junk, PROXIES) == "ip:10.0.0.5"
    assert client_identity("10.0.0.5", "[2001:db8::1]:443", PROXIES) == "ip:2001:db8::/64"


def test_an_ipv6_client_is_counted_per_64() -> None:
    first = client_identity("2001:db8:1:2::1", None, PROXIES)
    other_host_same_64 = client_identity("2001:db8:1:2:ffff:ffff:ffff:fffe", None, PROXIES)
    assert first == other_host_same_64 == "ip:2001:db8:1:2::/64"
    assert client_identity("2001:db8:1:3::1", None, PROXIES) != first
    assert client_identity("::ffff:198.51.100.7", None, PROXIES) == "ip:198.51.100.7"


def test_trusted_proxies_must_be_explicit_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("*", "127.0.0.1,*", "proxy.internal", "10.0.0.0/33"):
        monkeypatch.setenv("GATEWAY_TRUSTED_PROXIES", bad)
        with pytest.raises(ConfigurationError, match="GATEWAY_TRUSTED_PROXIES"):
            load_settings()


def test_fake_forwarded_addresses_do_not_buy_an_anonymous_client_more_calls(
    api_app: FastAPI,
) -> None:
    # The test client connects from 127.0.0.1, the default trusted proxy.
    with TestClient(api_app, client=("127.0.0.1", 40000)) as client:
        statuses = [
            client.get(
                "/v1/top-lists", headers={"X-Forwarded-For": f"10.9.{n}.1, 198.51.100.7"}
            ).status_code
            for n in range(8)
        ]
    assert statuses.count(429) >= 3, statuses  # burst 5: one client, whatever it claims
