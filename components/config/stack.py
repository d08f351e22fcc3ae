"""Reading the running stack's ``k8s-lab:*`` keys, under the engine or from ``pulumi config --json``."""

from __future__ import annotations

import json
from typing import Any, Mapping

import pulumi

from components.config.defaults import NAMESPACE
from components.config.parsing import parse
from components.config.problems import ConfigError, ConfigReported
from components.config.schema import LabConfig


STRUCTURED_KEYS = frozenset(
    {"network", "nodes", "vagrant", "kubernetes", "metallb", "ingress", "apps", "app_options", "cluster", "self_check", "tls", "dns", "offline"}
)


def _decode(key: str, value: Any) -> Any:
    """Pulumi hands structured values to the program as JSON text; plain ones as strings."""
    if not isinstance(value, str):
        return value
    if key in STRUCTURED_KEYS or key in ("write_kubeconfig", "local_domain_acknowledged"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # pydantic then names the key and the expected type
    return value


def read_stack_config() -> tuple[dict[str, Any], frozenset[str]]:
    """Every ``k8s-lab:*`` key of the running stack, decoded, and which of them are secret."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key in sorted(keys):
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        raw[key] = _decode(key, runtime_config.get_config(full_key))
        if runtime_config.is_config_secret(full_key) or full_key in runtime_config.get_config_secret_keys_env():
            secret.add(key)
    return raw, frozenset(secret)


def load() -> LabConfig:
    """Read and validate the running stack's configuration. Call once, from ``__main__.py``.

    On a problem the list is logged as the run's one error and the program ends (:class:`ConfigReported`).
    """
    raw, secret_keys = read_stack_config()
    try:
        return parse(raw, stack=pulumi.get_stack(), secret_keys=secret_keys)
    except ConfigError as err:
        pulumi.log.error(str(err))
        raise ConfigReported(err) from None


# --------------------------------------------------------------------------------------------
# Before the engine: `./lab up` and `./lab preview` check the stack's config first, so that a
# mistake ends with the problem list alone rather than followed by the CLI's resource summary.

PROBLEMS_EXIT_CODE = 65  # EX_DATAERR: anything else lets ./lab go on and pulumi report it


def raw_from_cli_json(text: str) -> tuple[dict[str, Any], frozenset[str]]:
    """The ``k8s-lab:*`` keys of ``pulumi config --json --show-secrets``, decoded, and the secret ones."""
    listed = json.loads(text)
    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key, entry in listed.items():
        if not full_key.startswith(prefix):
            continue
        if not isinstance(entry, Mapping) or "value" not in entry or entry["value"] == "[unknown]":
            # A secret pulumi did not decrypt, or a value from an environment it did not open.
            raise ValueError(f"{full_key} has no value to check here")
        key = full_key[len(prefix) :]
        raw[key] = entry["objectValue"] if "objectValue" in entry else _decode(key, entry["value"])
        if entry.get("secret"):
            secret.add(key)
    return raw, frozenset(secret)
