"""Network namespaces whose only interface is loopback: what every tier that runs real software
runs in, so that a stray connection fails instead of leaving the machine.

Two forms: :class:`LoopbackNetns`, a namespace this process enters and leaves thread by thread
(the control-plane and node tiers, whose servers live as long as the tests), and
:data:`LOOPBACK_ONLY`, a command line that runs one command in a namespace of its own (each
`pulumi` of the engine tests).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000

# A command line that runs the command after it in a new network namespace with only loopback up
# (root, util-linux's unshare and iproute2's ip).
LOOPBACK_ONLY = ("unshare", "--net", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "loopback-only")


def _bring_lo_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


class LoopbackNetns:
    """A fresh network namespace whose only interface is ``lo``, up.

    Creating it leaves the caller where it was; ``with netns.inside():`` moves the calling thread
    into it and back. Threads started and processes spawned from inside stay in it.
    """

    def __init__(self):
        self._libc = ctypes.CDLL(None, use_errno=True)
        home = self._current()
        try:
            if self._libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
            _bring_lo_up()
            self.interfaces = [name for _, name in socket.if_nameindex()]
            self._fd = self._current()
        finally:
            self._setns(home)
            os.close(home)
        if self.interfaces != ["lo"]:
            raise RuntimeError(f"the new network namespace has interfaces {self.interfaces}, expected only lo")

    @staticmethod
    def _current() -> int:
        return os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")

    @contextlib.contextmanager
    def inside(self):
        home = self._current()
        self._setns(self._fd)
        try:
            yield self
        finally:
            self._setns(home)
            os.close(home)

    def close(self) -> None:
        os.close(self._fd)
