"""Ask one DNS server for the A records of names, as the laptop's resolver would for the lab's domain.

    python scripts/dns-query.py SERVER PORT NAME...

prints one line per name: ``NAME ok ADDRESS...``, ``NAME nodata``, ``NAME <RCODE>`` (e.g.
REFUSED, NXDOMAIN) or ``NAME timeout``. Exit status 0 when every name was asked, 2 on bad
usage. Each query waits LAB_DNS_TIMEOUT_SECONDS (default 3). Used by scripts/self-check.sh
(LAB_DNS_IP); needs dnspython (requirements.txt).
"""

from __future__ import annotations

import os
import sys

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def ask(server: str, port: int, name: str, timeout: float = 3.0) -> str:
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        response = dns.query.udp(query, server, port=port, timeout=timeout)
        if response.flags & dns.flags.TC:  # too big for UDP: ask again over TCP, as resolvers do
            response = dns.query.tcp(query, server, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return "timeout"
    except OSError as err:
        return f"error {err.strerror or err}"
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        return dns.rcode.to_text(rcode)
    addresses = [item.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for item in rrset]
    return "ok " + " ".join(addresses) if addresses else "nodata"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    server, port, names = argv[0], int(argv[1]), argv[2:]
    timeout = float(os.environ.get("LAB_DNS_TIMEOUT_SECONDS", "3"))
    for name in names:
        print(f"{name} {ask(server, port, name, timeout)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
