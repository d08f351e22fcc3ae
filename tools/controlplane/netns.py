"""A network namespace whose only interface is loopback: every process of the tier runs in one."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000


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
