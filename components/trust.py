"""The commands that make a machine trust the lab CA, as ``./lab trust`` prints them.

``./lab trust`` first writes the CA certificate (public) to a file of the user's and passes its
path here, so every command works pasted into any shell: none asks Pulumi for anything (a plain
``pulumi stack output`` would use the shell's own backend and passphrase, not the lab's).

Each system is told to trust the CA for TLS servers only where it can be told so; where it cannot,
the CA certificate itself limits what it vouches for (server authentication only, names under the
lab's domain, no IP address), and the note says so. Standard library only: ``./lab`` runs this
with whichever ``python3`` is on PATH.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass

# Where Firefox and Chromium keep NSS databases (each holds a cert9.db): Firefox's profiles as
# packaged by Mozilla and distributions, as a snap (Ubuntu's default) and as a Flatpak, and the
# shared database Chrome and Chromium read on Linux. find, not a glob: zsh aborts a command on
# a glob that matches nothing.
NSS_DATABASE_ROOTS = (
    "~/.mozilla/firefox",
    "~/snap/firefox/common/.mozilla/firefox",
    "~/.var/app/org.mozilla.firefox/.mozilla/firefox",
    "~/.pki/nssdb",
)


@dataclass(frozen=True)
class TrustCommand:
    note: str
    """What the command does and what the system can and cannot restrict; printed as a comment."""
    command: str
    """One line to paste: no comment in it (interactive zsh runs ``#`` as a command)."""


def ca_file_name(stack: str) -> str:
    return f"k8s-lab-{stack}-ca.crt"


def trust_commands(stack: str, ca_file: str, windows_ca_file: str = "") -> dict[str, TrustCommand]:
    """Per system, the command trusting the CA certificate in ``ca_file`` (an absolute path).

    ``windows_ca_file``: the same file as Windows names it (``cygpath -w``, ``wslpath -w``).
    """
    file = shlex.quote(ca_file)
    name = ca_file_name(stack)
    nickname = shlex.quote(f"k8s-lab {stack} CA")
    limits = "the CA itself allows only TLS servers named under the lab's domain, and no IP address"
    roots = " ".join(NSS_DATABASE_ROOTS)
    windows_file = (windows_ca_file or ca_file).replace("'", "''")
    return {
        "debian_ubuntu": TrustCommand(
            f"the system bundle trusts a CA for every purpose, with no way to narrow it: {limits}",
            f"sudo cp {file} /usr/local/share/ca-certificates/{name} && sudo update-ca-certificates",
        ),
        "fedora": TrustCommand(
            "trusted for TLS servers only (an OpenSSL trusted certificate marked serverAuth, "
            "which update-ca-trust puts in the TLS bundle alone)",
            f"openssl x509 -in {file} -addtrust serverAuth | sudo tee /etc/pki/ca-trust/source/k8s-lab-{stack}-ca.pem >/dev/null"
            " && sudo update-ca-trust",
        ),
        "macos": TrustCommand(
            "trusted for TLS servers only (-p ssl)",
            f"sudo security add-trusted-cert -d -r trustRoot -p ssl -k /Library/Keychains/System.keychain {file}",
        ),
        "windows": TrustCommand(
            "PowerShell as Administrator; the Root store trusts a CA for every purpose the CA "
            f"certificate allows, and Windows honours its limits: {limits}",
            f"Import-Certificate -FilePath '{windows_file}' -CertStoreLocation Cert:\\LocalMachine\\Root",
        ),
        "firefox": TrustCommand(
            "trusted for TLS servers only (-t C,,), in every Firefox profile (packaged, snap, Flatpak) and "
            "Chrome/Chromium's database on Linux; certutil: libnss3-tools (Debian) / nss-tools (Fedora). "
            "Firefox on macOS and Windows can use the system's trust instead: security.enterprise_roots.enabled "
            "true in about:config",
            f"find {roots} -maxdepth 2 -name cert9.db 2>/dev/null | while IFS= read -r db; do "
            f'certutil -A -d "sql:${{db%/cert9.db}}" -n {nickname} -t C,, -i {file} </dev/null; done',
        ),
    }


def format_commands(commands: dict[str, TrustCommand]) -> str:
    return "".join(f"# {key.replace('_', ' ')}: {entry.note}\n{entry.command}\n\n" for key, entry in commands.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m components.trust", description="Print the commands that trust the lab CA.")
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--ca-file", required=True, help="the CA certificate's file, an absolute path")
    parser.add_argument("--windows-ca-file", default="", help="the same file as Windows names it")
    args = parser.parse_args(argv)
    sys.stdout.write(format_commands(trust_commands(args.stack, args.ca_file, args.windows_ca_file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
