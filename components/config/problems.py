"""What a check reports: a problem naming its key, and the error listing them all."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config.defaults import NAMESPACE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: where, what, and how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(pulumi.RunError):
    """The stack configuration is invalid. Raised before any resource is registered.

    A ``pulumi.RunError`` so the CLI prints the message alone, without a Python traceback.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"the {NAMESPACE} stack configuration has {count} problem{'s' if count != 1 else ''}; "
            f"nothing was created. Fix {'them' if count != 1 else 'it'} in Pulumi.<stack>.yaml "
            f"(or with `pulumi config set --path '<key>' <value>`):\n{lines}"
        )

    def paths(self) -> list[str]:
        return [p.path for p in self.problems]


# pulumi-language-python-exec's exit code for "the user was shown an actionable message": the
# CLI then adds nothing of its own. (A RunError is printed too, but the executor exits 1 and the
# CLI follows the list with "an unhandled error occurred: Program exited with non-zero exit code".)
EXIT_AFTER_MESSAGE = 32


class ConfigReported(SystemExit):
    """Ends the program after :func:`load` has logged the problem list as the run's error."""

    def __init__(self, error: ConfigError):
        super().__init__(EXIT_AFTER_MESSAGE)
        self.error = error


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def kind_of(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "list", dict: "mapping", str: "string"}.get(
        type(value), type(value).__name__
    )
