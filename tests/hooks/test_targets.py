"""Pure pieces of outbound delivery: which targets are allowed, retry timing, Retry-After."""

from __future__ import annotations

import ipaddress
import time
from email.utils import formatdate

import pytest

from hooks import targets
from hooks.delivery import MAX_RETRY_AFTER_SECONDS, next_delay, retry_after_seconds
from loyalty.errors import InvalidInput


class TestIsPublic:
    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",  # cloud metadata
            "100.64.0.1",  # carrier-grade NAT
            "0.0.0.0",  # noqa: S104 - an address under test, not a bind
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2002:0a00:0001::1",  # 6to4 wrapping 10.0.0.1
            "::",
        ],
    )
    def test_private_loopback_and_link_local_are_refused(self, address: str) -> None:
        assert not targets.is_public(ipaddress.ip_address(address))

    @pytest.mark.parametrize("address", ["8.8.8.8", "151.101.1.69", "2001:4860:4860::8888"])
    def test_public_addresses_pass(self, address: str) -> None:
        assert targets.is_public(ipaddress.ip_address(address))


class TestCheckUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]/hook",
            "https://10.0.0.7/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:192.168.0.1]/",
        ],
    )
    async def test_private_targets_are_refused_naming_url(self, url: str) -> None:
        with pytest.raises(InvalidInput) as refused:
            await targets.check_url(url, allow_private=False)
        assert refused.value.extra == {"field": "url"}

    async def test_private_targets_pass_when_allowed(self) -> None:
        await targets.check_url("http://127.0.0.1:8080/hook", allow_private=True)

    @pytest.mark.parametrize(
        "url", ["ftp://example.com/x", "example.com/hook", "http:///hook", "https://user:pw@example.com/"]
    )
    async def test_malformed_urls_are_refused(self, url: str) -> None:
        with pytest.raises(InvalidInput):
            await targets.check_url(url, allow_private=True)

    async def test_a_public_ip_literal_passes(self) -> None:
        await targets.check_url("https://8.8.8.8/hook", allow_private=False)


class TestRetryTiming:
    def test_each_failure_waits_its_delay_with_jitter_then_dead_letters(self) -> None:
        schedule = (30, 120, 600)
        for attempt, base in enumerate(schedule, start=1):
            delay = next_delay(schedule, attempt, retry_after=None)
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1
        assert next_delay(schedule, 4, retry_after=None) is None

    def test_retry_after_wins_only_when_longer(self) -> None:
        assert next_delay((30,), 1, retry_after=300) == 300
        delay = next_delay((30,), 1, retry_after=5)
        assert delay is not None
        assert delay < 40
        assert next_delay((30,), 1, retry_after=10**9) == MAX_RETRY_AFTER_SECONDS
        assert next_delay((30,), 2, retry_after=300) is None, "Retry-After does not add attempts"

    def test_retry_after_as_seconds_or_http_date(self) -> None:
        now = time.time()
        assert retry_after_seconds("120", now=now) == 120
        assert retry_after_seconds(formatdate(now + 600, usegmt=True), now=now) == pytest.approx(600, abs=1)
        assert retry_after_seconds(formatdate(now - 600, usegmt=True), now=now) == 0
        assert retry_after_seconds("soon", now=now) is None
        assert retry_after_seconds(None, now=now) is None
