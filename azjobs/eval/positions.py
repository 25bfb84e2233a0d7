"""Labelled positions (JSON lines): moves played, and the exact score of every move, from a solver.

One JSON object per line: `"moves"`, the moves played from the start in the game's notation
(for Connect Four a string of 1-based column digits such as "4453"), and `"scores"`, one entry
per action (Connect Four: per column, left to right): null where the move is illegal, > 0 a win,
0 a draw, < 0 a loss for the player to move, a larger win score being a quicker win (and a
larger loss score a slower loss). Other fields (e.g. "best_class", "src") are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from azjobs.errors import AzjobsError
from azjobs.games.base import Game


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


def load_positions(path: Path, game: Game) -> LabelledPositions:
    """Read and check a labelled set; AzjobsError naming the file, the line and what is wrong."""
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
            raise AzjobsError(f"{path} line {number}: {e} (see 'Labelled positions' in the README)") from None
        states.append(state)
        scores.append(row)
        played.append(count)
    if not states:
        raise AzjobsError(f"{path} holds no positions: write one JSON object per line (see the README)")
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
