"""What one setting means and which values it takes: the Spec each Settings field carries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from azjobs.errors import AzjobsError


class SettingsError(AzjobsError, ValueError):
    """A setting has an unknown name, a value of the wrong type, or one out of its range."""


@dataclass(frozen=True)
class Spec:
    """What one setting means and which values it takes: docs, --help, TOML comments and checks read it."""

    doc: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    text: str = "text"  # the values a text setting takes, in words
    below: float | None = None

    def allows(self, value: float) -> bool:
        return math.isfinite(value) and not (
            (self.at_least is not None and value < self.at_least)
            or (self.above is not None and value <= self.above)
            or (self.at_most is not None and value > self.at_most)
            or (self.below is not None and value >= self.below)
        )

    def allowed(self, kind: type) -> str:
        """The values it takes in words, e.g. "a number in (0, 1]" or "an integer >= 1"."""
        if kind is bool:
            return "true or false"
        if kind is str:
            return self.text
        noun = "an integer" if kind is int else "a number"
        low = self.at_least if self.at_least is not None else self.above
        high, closed = (self.at_most, "]") if self.at_most is not None else (self.below, ")")
        if low is not None and high is not None:
            return f"{noun} in {'[' if self.above is None else '('}{_num(low)}, {_num(high)}{closed}"
        if low is not None:
            return f"{noun} {'>=' if self.above is None else '>'} {_num(low)}"
        if high is not None:
            return f"{noun} {'<=' if closed == ']' else '<'} {_num(high)}"
        return noun


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def setting(
    default: Any,
    doc: str,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    text: str = "text",
) -> Any:
    """A Settings field: its default, its one-line meaning and its range (bounds as in Spec)."""
    return field(default=default, metadata={"spec": Spec(doc, at_least, above, at_most, text, below)})
