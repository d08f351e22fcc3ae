"""Pure IPv4 math for the lab: address ranges, pools, CIDRs.

Nothing here imports Pulumi, so every function can be tested on its own. MetalLB accepts an
address pool entry either as a CIDR (``192.168.56.200/29``) or as an inclusive range
(``192.168.56.200-192.168.56.250``); both become an :class:`IPRange` here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Iterable, Sequence

# VirtualBox 6.1.28+ only lets host-only networks live in this block unless the user lists
# more ranges in /etc/vbox/networks.conf.
VIRTUALBOX_DEFAULT_HOST_ONLY = IPv4Network("192.168.56.0/21")


class AddressError(ValueError):
    """A malformed address, CIDR or range; the message says what is wrong and how to fix it."""


@dataclass(frozen=True, order=True)
class IPRange:
    """An inclusive range of IPv4 addresses."""

    first: IPv4Address
    last: IPv4Address

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise AddressError(
                f"range {self.first}-{self.last} is reversed (its start is after its end); "
                f"write it low-high: {self.last}-{self.first}"
            )

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and self.first <= address <= self.last

    def overlaps(self, other: "IPRange") -> bool:
        return self.first <= other.last and other.first <= self.last

    def within(self, network: IPv4Network) -> bool:
        return self.first in network and self.last in network

    def to_metallb(self) -> str:
        """The form MetalLB's IPAddressPool takes: a CIDR where the range is exactly one."""
        cidrs = list(ipaddress.summarize_address_range(self.first, self.last))
        if len(cidrs) == 1:
            return str(cidrs[0])
        return f"{self.first}-{self.last}"

    def __str__(self) -> str:
        return f"{self.first}-{self.last}" if self.first != self.last else str(self.first)


def parse_address(text: str) -> IPv4Address:
    """Parse one IPv4 address, rejecting IPv6 and anything with a prefix."""
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise AddressError(f"{text!r} is not an IPv4 address; write four numbers 0-255 like 192.168.56.10") from None
    if not isinstance(address, IPv4Address):
        raise AddressError(f"{text!r} is an IPv6 address; this lab uses an IPv4 host-only network")
    return address


def parse_network(text: str) -> IPv4Network:
    """Parse a CIDR such as ``192.168.56.0/24``; host bits must be zero."""
    raw = str(text).strip()
    if "/" not in raw:
        raise AddressError(f"{text!r} is not a CIDR; add the prefix length, e.g. {raw}/24")
    try:
        network = ipaddress.ip_network(raw, strict=True)
    except ValueError as err:
        try:
            loose = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise AddressError(f"{text!r} is not a valid CIDR ({err}); write it like 192.168.56.0/24") from None
        raise AddressError(f"{text!r} has host bits set; the network is {loose}") from None
    if not isinstance(network, IPv4Network):
        raise AddressError(f"{text!r} is an IPv6 network; this lab uses IPv4")
    return network


def parse_range(text: str) -> IPRange:
    """Parse a MetalLB pool entry: ``a.b.c.d-e.f.g.h``, a CIDR, or a single address."""
    raw = str(text).strip()
    if "-" in raw:
        start, _, end = raw.partition("-")
        first, last = parse_address(start), parse_address(end)
        return IPRange(first, last)
    if "/" in raw:
        network = parse_network(raw)
        return IPRange(network.network_address, network.broadcast_address)
    address = parse_address(raw)
    return IPRange(address, address)


def laptop_address(network: IPv4Network) -> IPv4Address:
    """The host's own address on a host-only network: VirtualBox and libvirt both take the first."""
    return network.network_address + 1


def reserved_addresses(network: IPv4Network) -> dict[IPv4Address, str]:
    """Addresses in ``network`` no node or pool may use, with the reason for each."""
    return {
        network.network_address: "the network address",
        network.broadcast_address: "the broadcast address",
        laptop_address(network): "the laptop's own address on the host-only network",
    }


def total_size(ranges: Iterable[IPRange]) -> int:
    return sum(r.size for r in ranges)


def first_overlap(a: Sequence[IPRange], b: Sequence[IPRange]) -> tuple[IPRange, IPRange] | None:
    for left in a:
        for right in b:
            if left.overlaps(right):
                return left, right
    return None


def subtract_address(ranges: Sequence[IPRange], address: IPv4Address) -> list[IPRange]:
    """The ranges with one address carved out (used to reserve a pinned IP in its own pool)."""
    result: list[IPRange] = []
    for r in ranges:
        if address not in r:
            result.append(r)
            continue
        if r.first < address:
            result.append(IPRange(r.first, address - 1))
        if address < r.last:
            result.append(IPRange(address + 1, r.last))
    return result


def range_overlaps_network(r: IPRange, network: IPv4Network) -> bool:
    return r.first <= network.broadcast_address and network.network_address <= r.last


def needs_virtualbox_networks_conf(network: IPv4Network) -> bool:
    """True when VirtualBox refuses this host-only network without /etc/vbox/networks.conf."""
    return not network.subnet_of(VIRTUALBOX_DEFAULT_HOST_ONLY)


def node_ranges(pod_network: IPv4Network, node_prefix: int) -> int:
    """How many per-node ranges of ``/node_prefix`` a pod network holds (0 when it is smaller than one)."""
    if pod_network.prefixlen > node_prefix:
        return 0
    return 2 ** (node_prefix - pod_network.prefixlen)
