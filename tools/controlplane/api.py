"""A small client of the API server, the processes of the tier, and waiting for a condition."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body
        super().__init__(f"{status}: {body.get('message', body)}")


class Api:
    def __init__(self, server: str, token: str, ca_file: Path):
        self.server = server
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 10) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"message": raw.decode(errors="replace")}
            raise ApiError(err.code, payload) from None
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:  # /readyz and friends answer plain text
            return {"text": raw.decode(errors="replace")}

    def get(self, path: str) -> Optional[dict]:
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def items(self, path: str) -> list[dict]:
        found = self.get(path)
        return (found or {}).get("items") or []

    def patch(self, path: str, body: Any, kind: str = "merge") -> dict:
        types = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}
        return self.request("PATCH", path, body, content_type=types[kind])


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    env: Optional[dict] = None
    popen: Optional[subprocess.Popen] = None

    def start(self) -> "Process":
        self._log = open(self.log, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, start_new_session=True
        )
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.1, context: Callable[[], str] = lambda: ""):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as err:  # noqa: BLE001 - kept for the message
            last = err
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout:.0f}s (last error: {last}) {context()}")
