"""Where webhooks may go: every notation of a non-public address is refused, before
any connection; names are checked on every address they resolve to."""

from __future__ import annotations

import pytest

from daguerre.webhook_guard import (
    AllowList,
    DestinationRefused,
    check_url,
    is_public,
    literal_address,
    resolve_destination,
)
from tests.support.webhooks import scripted_resolver

NOWHERE = AllowList.parse([])

# Each is this machine, a private network, a cloud metadata endpoint, or no address.
REFUSED = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://017700000001/hook",
    "http://127.1/hook",
    "http://0x7f.1/hook",
    "http://0/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[ff02::1]/hook",
    "http://[64:ff9b::a00:1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[2001:db8::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://198.18.0.1/hook",
    "http://224.0.0.1/hook",
    "http://239.255.255.250/hook",
    "http://240.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://",
    "https://",
    "http:///hook",
    "http://:80/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://example.com:0/hook",
    "http://example.com:99999/hook",
    "http://127%2e0%2e0%2e1/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_what_is_wrong_on_its_face_is_refused_without_dns(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url, NOWHERE)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://hooks.example.com:8080/a/b?c=d",
        "https://user:pass@example.com/hook?token=x",
        "http://8.8.8.8/hook",
        "http://134744072/hook",  # 8.8.8.8 as one number: odd, but public
        "http://[2606:4700:4700::1111]/hook",
        "http://[::ffff:8.8.8.8]/hook",
    ],
)
def test_public_destinations_pass(url: str) -> None:
    check_url(url, NOWHERE)


def test_legacy_notations_are_read_as_the_resolver_reads_them() -> None:
    assert str(literal_address("0x7f000001")) == "127.0.0.1"
    assert str(literal_address("2130706433")) == "127.0.0.1"
    assert str(literal_address("0177.0.0.1")) == "127.0.0.1"
    assert literal_address("example.com") is None
    assert literal_address("1e100.net") is None


def test_is_public_looks_inside_mapped_and_nat64_addresses() -> None:
    import ipaddress

    assert not is_public(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert is_public(ipaddress.ip_address("::ffff:8.8.8.8"))
    assert not is_public(ipaddress.ip_address("64:ff9b::7f00:1"))
    assert is_public(ipaddress.ip_address("64:ff9b::808:808"))


def test_the_allow_list_lets_chosen_internal_destinations_through() -> None:
    allow = AllowList.parse(["127.0.0.1", "10.1.0.0/16", "Hooks.Internal"])
    check_url("http://127.0.0.1:9000/hook", allow)
    check_url("http://2130706433:9000/hook", allow)  # the same address, another notation
    check_url("http://10.1.2.3/hook", allow)
    check_url("http://hooks.internal/hook", allow)
    with pytest.raises(DestinationRefused):
        check_url("http://10.2.0.1/hook", allow)
    with pytest.raises(DestinationRefused):
        check_url("http://127.0.0.2/hook", allow)
    with pytest.raises(DestinationRefused):
        check_url("http://localhost/hook", allow)


resolver_of = scripted_resolver


async def test_a_name_is_refused_if_any_address_it_resolves_to_is_not_public() -> None:
    resolve = resolver_of(["93.184.216.34", "127.0.0.1"])
    with pytest.raises(DestinationRefused, match=r"127\.0\.0\.1"):
        await resolve_destination("https://mixed.example/hook", NOWHERE, resolve)
    for private in (["10.0.0.7"], ["::1"], ["169.254.169.254"], ["::ffff:127.0.0.1"]):
        with pytest.raises(DestinationRefused):
            await resolve_destination("https://x.example/hook", NOWHERE, resolver_of(private))


async def test_the_address_connected_to_is_the_one_checked() -> None:
    # A rebinding name: public for the first look, private for any later one.
    resolve = resolver_of(["93.184.216.34"], ["127.0.0.1"])
    target, address = await resolve_destination("https://rebind.example/hook", NOWHERE, resolve)
    assert str(address) == "93.184.216.34"
    assert target.host == "rebind.example" and target.port == 443
    assert resolve.calls == ["rebind.example"]  # type: ignore[attr-defined]


async def test_refused_literals_never_reach_the_resolver() -> None:
    resolve = resolver_of(["93.184.216.34"])
    for url in ("http://0x7f000001/", "http://[::1]/", "http://localhost/"):
        with pytest.raises(DestinationRefused):
            await resolve_destination(url, NOWHERE, resolve)
    assert resolve.calls == []  # type: ignore[attr-defined]


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(DestinationRefused, match="does not resolve"):
        await resolve_destination("https://nx.example/hook", NOWHERE, fail)


def test_the_allow_list_setting_reads_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    from daguerre.config import Settings

    monkeypatch.setenv("DAGUERRE_WEBHOOK_ALLOW", '["127.0.0.1", "10.0.0.0/8"]')
    assert Settings().webhook_allow == ["127.0.0.1", "10.0.0.0/8"]
    monkeypatch.setenv("DAGUERRE_WEBHOOK_ALLOW", "hooks.internal, 192.168.1.0/24")
    assert Settings().webhook_allow == ["hooks.internal", "192.168.1.0/24"]
