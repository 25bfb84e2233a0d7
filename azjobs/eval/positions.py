"""Labelled positions (JSON lines): moves played, and the exact score of every move, from a solver.

One JSON object per line: `"moves"`, the moves played from the start in the game's notation
(for Connect Four a string of 1-based column digits such as "4453"), and `"scores"`, one entry
per action (Connect Four: per column, left to right): null where the move is illegal, > 0 a win,
0 a draw, < 0 a loss for the player to move, a larger win score being a quicker win (and a
larger loss score a slower loss). Other fields (e.g. "best_class", "src") are ignored.
Sets shipped in azjobs/eval/data/ go by name (`--positions connect4`); data/README.md says where
they come from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from azjobs.errors import AzjobsError
from azjobs.games.base import Game

DATA_DIR = Path(__file__).with_name("data")
# Labelled sets shipped with the package, by the name commands accept in place of a path.
BUNDLED: dict[str, str] = {"connect4": "connect4.jsonl"}


def resolve_positions(spec: str | Path) -> Path:
    """The file of a bundled set named `spec` (e.g. "connect4"), else `spec` as a path.

    AzjobsError naming the cause and the fix when it is neither. Settings keep the name, not this
    path, so each machine finds the set in its own install.
    """
    text = str(spec)
    if text in BUNDLED:
        return DATA_DIR / BUNDLED[text]
    path = Path(text).expanduser()
    if path.is_file():
        return path
    names = ", ".join(sorted(BUNDLED))
    if path.exists():
        raise AzjobsError(f"labelled positions {text} is not a file: give a JSON-lines file or a bundled set ({names})")
    if path.suffix or len(path.parts) > 1:
        raise AzjobsError(f"labelled positions file {text} not found: check the path, or name a bundled set ({names})")
    raise AzjobsError(f"unknown labelled set {text!r}: name a bundled set ({names}) or give a JSON-lines file's path")


@dataclass(frozen=True)
class LabelledPositions:
    """A labelled set as arrays, one row per position."""

    states: np.ndarray  # [P, S] int8
    scores: np.ndarray  # [P, A] float64, NaN where the move is illegal
    moves_played: np.ndarray  # [P] int32

    def __len__(self) -> int:
        return len(self.states)

    @property
    def best(self) -> np.ndarray:
        """The best score of each position.  # [P]"""
        return np.nanmax(self.scores, axis=1)


def load_positions(path: str | Path, game: Game) -> LabelledPositions:
    """Read and check a labelled set (a bundled set's name or a file); AzjobsError naming the file,
    the line and what is wrong."""
    path = resolve_positions(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise AzjobsError(f"cannot read labelled positions {path}: {e.strerror}") from None
    states, scores, played = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            state, row, count = _parse_line(line, game)
        except ValueError as e:
            raise AzjobsError(f"{path} line {number}: {e} (the format: docs/evaluation.md)") from None
        states.append(state)
        scores.append(row)
        played.append(count)
    if not states:
        raise AzjobsError(f"{path} holds no positions: write one JSON object per line (the format: docs/evaluation.md)")
    return LabelledPositions(np.stack(states), np.stack(scores), np.array(played, np.int32))


def _parse_line(line: str, game: Game) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError("not a JSON object") from None
    if not isinstance(record, dict) or not isinstance(record.get("moves"), str):
        raise ValueError('needs "moves", a string of moves in the game\'s notation')
    raw = record.get("scores")
    if not isinstance(raw, list) or len(raw) != game.num_actions:
        raise ValueError(f'needs "scores", a list of {game.num_actions} numbers or nulls (one per move of {game.name})')
    actions = game.parse_moves(record["moves"])
    state = game.state_after(actions)
    if game.is_terminal(state):
        raise ValueError("the game is already over after these moves")
    legal = game.legal_mask(state[None])[0]
    row = np.full(game.num_actions, np.nan)
    for action, value in enumerate(raw):
        if value is None:
            if legal[action]:
                raise ValueError(f"move {game.action_to_str(action)} is legal but its score is null")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"score of move {game.action_to_str(action)} is {value!r}, not a number")
        if not legal[action]:
            raise ValueError(f"move {game.action_to_str(action)} is illegal but has a score")
        row[action] = float(value)
    return state, row, len(actions)
