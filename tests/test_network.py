"""The pure IP math behind pools, reservations and CIDR checks."""

from ipaddress import IPv4Address, IPv4Network, summarize_address_range

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components import network as net

addresses = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)


@st.composite
def ranges(draw):
    a, b = sorted((draw(addresses), draw(addresses)))
    return net.IPRange(a, b)


def test_parses_the_seed_range_and_cidrs():
    r = net.parse_range("192.168.56.200-192.168.56.250")
    assert (str(r.first), str(r.last), r.size) == ("192.168.56.200", "192.168.56.250", 51)
    assert net.parse_range("192.168.56.200/29").size == 8
    assert net.parse_range(" 192.168.56.7 ").size == 1


@pytest.mark.parametrize(
    "text,words",
    [
        ("192.168.56.250-192.168.56.200", ["reversed", "192.168.56.200-192.168.56.250"]),
        ("192.168.56.2000", ["not an IPv4 address"]),
        ("192.168.56.0/33", ["not a valid CIDR"]),
        ("192.168.56.1/24", ["host bits", "192.168.56.0/24"]),
        ("fd00::1-fd00::9", ["IPv6"]),
    ],
)
def test_malformed_input_says_what_and_how(text, words):
    with pytest.raises(net.AddressError) as err:
        net.parse_range(text)
    for word in words:
        assert word in str(err.value)


def test_metallb_form_uses_a_cidr_only_when_exact():
    assert net.parse_range("192.168.56.200-192.168.56.207").to_metallb() == "192.168.56.200/29"
    assert net.parse_range("192.168.56.200-192.168.56.250").to_metallb() == "192.168.56.200-192.168.56.250"
    assert net.parse_range("192.168.56.9").to_metallb() == "192.168.56.9/32"


def test_reserved_addresses_include_the_laptop():
    reserved = net.reserved_addresses(IPv4Network("192.168.56.0/24"))
    assert reserved[IPv4Address("192.168.56.1")].startswith("the laptop")
    assert IPv4Address("192.168.56.255") in reserved and IPv4Address("192.168.56.0") in reserved


def test_virtualbox_range_check():
    assert not net.needs_virtualbox_networks_conf(IPv4Network("192.168.56.0/24"))
    assert not net.needs_virtualbox_networks_conf(IPv4Network("192.168.63.0/24"))
    assert net.needs_virtualbox_networks_conf(IPv4Network("192.168.64.0/24"))
    assert net.needs_virtualbox_networks_conf(IPv4Network("10.0.0.0/24"))


@given(ranges())
def test_metallb_form_round_trips(r):
    assert net.parse_range(r.to_metallb()) == r


@given(ranges(), ranges())
def test_overlap_is_symmetric_and_matches_sets(a, b):
    assert a.overlaps(b) == b.overlaps(a)
    assert a.overlaps(b) == (max(a.first, b.first) <= min(a.last, b.last))


@given(ranges(), addresses)
def test_subtracting_an_address_removes_exactly_it(r, address):
    rest = net.subtract_address([r], address)
    assert all(address not in part for part in rest)
    expected = r.size - (1 if address in r else 0)
    assert net.total_size(rest) == expected
    for part in rest:
        assert r.first <= part.first and part.last <= r.last


@given(ranges())
def test_size_matches_stdlib_summaries(r):
    assert r.size == sum(c.num_addresses for c in summarize_address_range(r.first, r.last))
