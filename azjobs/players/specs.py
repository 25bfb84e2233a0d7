"""Player specs: the short strings that name a player (`random`, `alphabeta:4`, `net:12`), and the
evaluation opponents a run's `eval_opponents` setting lists. Imports nothing of azjobs: the
settings check their values with it."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ARGS = {"alphabeta": 4, "mcts": 500}  # depth, simulations
KINDS = ("random", "oneply", "alphabeta", "mcts", "net")
SPEC_HELP = "random, oneply, alphabeta[:DEPTH], mcts[:SIMULATIONS] or net[:VERSION]"
PREVIOUS = "previous"  # in eval_opponents: the version evaluated before


@dataclass(frozen=True)
class PlayerSpec:
    kind: str
    arg: int | None = None  # depth, simulations or weights version (None: the default / the newest)

    @classmethod
    def parse(cls, text: str) -> PlayerSpec:
        """ValueError naming the accepted forms if `text` is not a spec."""
        kind, _, arg = text.strip().partition(":")
        if kind not in KINDS or (arg and (not arg.isdigit() or kind in ("random", "oneply"))):
            raise ValueError(f"unknown player {text!r}; use {SPEC_HELP}")
        number = int(arg) if arg else DEFAULT_ARGS.get(kind)
        if number is not None and number < 1:
            raise ValueError(f"player {text!r}: the number must be at least 1")
        return cls(kind, number)

    @property
    def is_baseline(self) -> bool:
        return self.kind != "net"

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def opponent_list(text: str) -> list[str]:
    """The comma-separated entries of eval_opponents."""
    return [item.strip() for item in text.split(",") if item.strip()]


def check_opponents(text: str) -> None:
    """ValueError unless every entry of `text` (eval_opponents) is `previous` or a baseline's spec."""
    for item in opponent_list(text):
        if item == PREVIOUS:
            continue
        try:
            spec = PlayerSpec.parse(item)
        except ValueError as e:
            raise ValueError(f"{e}, or previous") from None
        if not spec.is_baseline:
            raise ValueError(f"{item!r} is a network; name baselines or `previous`")
