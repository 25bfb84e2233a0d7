"""Player specs: the short strings that name a player (`random`, `alphabeta:4`, `net:12`, `net:best`,
`net@RUN_DIR:12`, `agent:FILE:sims=200`), and the evaluation opponents a run's `eval_opponents` setting
lists. Imports nothing of azjobs: the settings check their values with it."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_ARGS = {"alphabeta": 4, "mcts": 500}  # depth, simulations
KINDS = ("random", "oneply", "alphabeta", "mcts", "net", "agent")
SPEC_HELP = (
    "random, oneply, alphabeta[:DEPTH], mcts[:SIMULATIONS], net[:VERSION|:best], net@RUN_DIR[:VERSION|:best] "
    "or agent:FILE[:sims=N]"
)
PREVIOUS = "previous"  # in eval_opponents: the version evaluated before
BEST = "best"  # net:best: the run's best version (azjobs.eval.standing)
OTHER_RUN = "net@"  # net@RUN_DIR: a network of another run
AGENT_SIMS = re.compile(r"^(?P<file>.+):sims=(?P<sims>\d+)$")


@dataclass(frozen=True)
class PlayerSpec:
    kind: str
    arg: int | None = None  # depth, simulations or weights version (None: the default / the newest)
    best: bool = False  # net:best: the run's best version (arg stays None until it is looked up)
    where: str | None = None  # net@RUN_DIR: the other run's folder; agent:FILE: the exported agent's file

    @classmethod
    def parse(cls, text: str) -> PlayerSpec:
        """ValueError naming the accepted forms if `text` is not a spec."""
        text = text.strip()
        if text.startswith(OTHER_RUN):
            return cls._parse_net(text, *_split_version(text[len(OTHER_RUN) :]))
        kind, _, arg = text.partition(":")
        if kind == "agent":
            return cls._parse_agent(text, arg)
        if kind == "net":
            return cls._parse_net(text, None, arg)
        if kind not in KINDS or (arg and (not arg.isdigit() or kind in ("random", "oneply"))):
            raise ValueError(f"unknown player {text!r}; use {SPEC_HELP}")
        number = int(arg) if arg else DEFAULT_ARGS.get(kind)
        if number is not None and number < 1:
            raise ValueError(f"player {text!r}: the number must be at least 1")
        return cls(kind, number)

    @classmethod
    def _parse_net(cls, text: str, where: str | None, arg: str) -> PlayerSpec:
        if where is not None and not where:
            raise ValueError(f"player {text!r} names no run: write net@RUN_DIR or net@RUN_DIR:VERSION")
        if arg == BEST:
            return cls("net", None, best=True, where=where)
        if arg and not arg.isdigit():
            raise ValueError(f"unknown player {text!r}; use {SPEC_HELP}")
        if arg and int(arg) < 1:
            raise ValueError(f"player {text!r}: the number must be at least 1")
        return cls("net", int(arg) if arg else None, where=where)

    @classmethod
    def _parse_agent(cls, text: str, rest: str) -> PlayerSpec:
        found = AGENT_SIMS.match(rest)
        where, sims = (found["file"], int(found["sims"])) if found else (rest, None)
        if not where:
            raise ValueError(f"player {text!r} names no file: write agent:FILE or agent:FILE:sims=N")
        return cls("agent", sims, where=where)

    @property
    def is_baseline(self) -> bool:
        return self.kind not in ("net", "agent")

    @property
    def needs_run(self) -> bool:
        """Whether the player needs the run's own weights (`net`, `net:V`, `net:best`)."""
        return self.kind == "net" and self.where is None

    def __str__(self) -> str:
        if self.kind == "agent":
            return f"agent:{self.where}" + ("" if self.arg is None else f":sims={self.arg}")
        head = self.kind if self.where is None else f"{OTHER_RUN}{self.where}"
        if self.best:
            return f"{head}:{BEST}"
        return head if self.arg is None else f"{head}:{self.arg}"


def _split_version(rest: str) -> tuple[str, str]:
    """RUN_DIR and VERSION (or best, or "") of what follows `net@`; a folder may itself hold colons."""
    where, colon, arg = rest.rpartition(":")
    if colon and (arg.isdigit() or arg == BEST or not arg):
        return where, arg
    return rest, ""


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
