"""Othello (Reversi) on 8x8 (`othello`) and 6x6 (`othello6`), as bitboards in numpy over many games at once.

Notation: columns a-h from the left, rows 1-8 from the top, so a1 is the top left corner and the
start position has white on d4 and e5, black on d5 and e4; black moves first. `pass` is the move
of a player who has no other, and only then; the game ends when neither player can move, and the
player with more discs wins. The board is a 64-bit integer per side (bit r * size + c for row r
from the top, column c from the left), so legal moves and flips are a few shifts over all games.

State row (int8, 26 values): the bitboards of the player to move, of the other player, and of the
legal moves of the player to move (8 bytes each, little-endian), the colour to move (0 black,
1 white), and the status (0 playing, 1 must pass, 2 game over), all set by `play`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from azjobs.games import register
from azjobs.games.base import Game
from azjobs.games.boards import NUM_DIHEDRAL, cell_names, dihedral_planes_policy, draw_board, split_moves

OWN, OTHER, LEGAL = slice(0, 8), slice(8, 16), slice(16, 24)  # bitboards in a state row
BITBOARDS = slice(0, 24)
COLOR = 24  # colour of the player to move: 0 black (moves first), 1 white
STATUS = 25
PLAYING, MUST_PASS, OVER = 0, 1, 2
STATE_SIZE = 26
MARKS = ("X", "O")  # black, white

ZERO, ONE = np.uint64(0), np.uint64(1)

# Per size: the run's settings where the global defaults don't fit (docs/your-own-game.md says how
# to choose them). Sized for a first run on a CPU (in 10 minutes on about one core the 8x8 agent
# played 896 games and then won 50 of 50 against a random player); for long runs on a GPU raise the
# network and the simulations.
DEFAULTS: dict[int, dict[str, Any]] = {
    8: {
        "net_blocks": 3,
        "net_channels": 48,
        "num_simulations": 50,
        "dirichlet_alpha": 1.0,  # ~10 / the 8-10 legal moves of an average position
        "temperature_moves": 12,  # of some 60 moves a game
        "min_replay_positions": 2_000,
        # Small jobs: a shard lands when its job ends, and 1,024 games of 60 moves would keep the
        # trainer waiting most of a 10-minute run; 128 games (about 7,700 positions) take a minute.
        "games_per_job": 128,
        "games_in_flight": 64,
        "inference_batch_size": 32,  # one group's request
        "publish_every_steps": 50,
    },
    6: {
        "net_blocks": 3,
        "net_channels": 32,
        "num_simulations": 50,
        "dirichlet_alpha": 1.5,  # ~10 / 5-6 legal moves
        "temperature_moves": 8,  # of some 32 moves a game
        "replay_buffer_size": 50_000,
        "min_replay_positions": 1_000,
        "publish_every_steps": 50,
    },
}


def _shifts(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left shifts, right shifts and masks that move every disc one step in each of the 8 directions,
    dropping those that would leave the board (or wrap around to the next row).  # 3 x [8] uint64"""
    full = (1 << size * size) - 1
    first_col = sum(1 << r * size for r in range(size))
    not_first, not_last = full & ~first_col, full & ~(first_col << size - 1)
    # (left, right, mask) for east, west, south, north, south-east, south-west, north-east, north-west
    table = [
        (1, 0, not_first),
        (0, 1, not_last),
        (size, 0, full),
        (0, size, full),
        (size + 1, 0, not_first),
        (size - 1, 0, not_last),
        (0, size - 1, not_first),
        (0, size + 1, not_last),
    ]
    left, right, mask = (np.array(column, dtype=np.uint64) for column in zip(*table))
    return left, right, mask


class Othello(Game):
    """Othello on a `size` x `size` board (an even size from 4 to 8)."""

    num_symmetries = NUM_DIHEDRAL
    plane_names = ("the discs of the player to move", "the opponent's discs", "the legal moves of the player to move")
    encoding_doc = (
        "planes[p, r, c] is 1 where plane p holds row r (0 = the top row) and column c (0 = the leftmost); "
        "action a < size * size is the cell r * size + c, written column letter then row number from the top "
        "(a1 the top left); the last action is pass"
    )

    def __init__(self, size: int = 8) -> None:
        if size % 2 or not 4 <= size <= 8:
            raise ValueError(f"Othello needs an even board size from 4 to 8, not {size}")
        self.size = size
        self.cells = size * size
        self.pass_action = self.cells
        self.name = "othello" if size == 8 else f"othello{size}"
        self.num_actions = self.cells + 1  # the cells row by row from the top left, then pass
        self.state_size = STATE_SIZE
        # Planes: the mover's discs, the opponent's, and the mover's legal moves (what the rules
        # compute cheaply here and a small network only learns slowly).
        self.planes_shape = (3, size, size)
        self.default_settings = DEFAULTS.get(size, DEFAULTS[6])
        self._left, self._right, self._mask = _shifts(size)
        self._full = np.uint64((1 << self.cells) - 1)
        self._names = [*cell_names(size, first_row="top"), "pass"]
        self._actions = {name: action for action, name in enumerate(self._names)}

    # Bitboards.

    def _step(self, discs: np.ndarray) -> np.ndarray:
        """Every disc moved one step in each direction.  # [K, 1 or 8] -> [K, 8] uint64"""
        return ((discs << self._left) >> self._right) & self._mask

    def _moves(self, own: np.ndarray, opp: np.ndarray) -> np.ndarray:
        """Empty cells from which some line of opponent discs runs to a disc of `own`.  # [K] x2 -> [K] uint64"""
        opp8 = opp[:, None]
        run = self._step(own[:, None]) & opp8  # [K, 8] opponent discs next to own ones, per direction
        for _ in range(self.size - 3):  # a line holds at most size - 2 opponent discs
            run |= self._step(run) & opp8
        return np.bitwise_or.reduce(self._step(run), axis=1) & ~(own | opp) & self._full

    def _flips(self, own: np.ndarray, opp: np.ndarray, move: np.ndarray) -> np.ndarray:
        """The opponent discs that `move` (one bit, or 0 for a pass) turns over.  # [K] x3 -> [K] uint64"""
        opp8 = opp[:, None]
        run = self._step(move[:, None]) & opp8  # [K, 8] opponent discs in a row from the move, per direction
        for _ in range(self.size - 3):
            run |= self._step(run) & opp8
        closed = (self._step(run) & own[:, None]) != 0  # the line ends at one of the mover's discs
        return np.bitwise_or.reduce(np.where(closed, run, ZERO), axis=1)

    def _state(self, own: np.ndarray, other: np.ndarray, color: np.ndarray) -> np.ndarray:
        """State rows for the player `color` to move with discs `own` against `other`.  # [K] -> [K, S]"""
        legal = self._moves(own, other)
        status = np.full(len(own), PLAYING, np.int8)
        stuck = np.flatnonzero(legal == 0)
        if len(stuck):
            can_reply = self._moves(other[stuck], own[stuck]) != 0
            status[stuck] = np.where(can_reply, MUST_PASS, OVER)
        out = np.empty((len(own), STATE_SIZE), np.int8)
        out[:, BITBOARDS] = np.stack([own, other, legal], axis=1).astype("<u8").view(np.int8)
        out[:, COLOR] = color
        out[:, STATUS] = status
        return out

    @staticmethod
    def _bitboards(states: np.ndarray) -> np.ndarray:
        """The three bitboards of each state.  # [K, S] -> [K, 3] uint64"""
        return np.ascontiguousarray(states[:, BITBOARDS]).view("<u8").astype(np.uint64)

    def _bits(self, states: np.ndarray, part: slice) -> np.ndarray:
        """The cells of one or more bitboards as 0/1.  # [K, S] -> [K, boards, cells] uint8"""
        raw = np.unpackbits(states[:, part].view(np.uint8), axis=1, bitorder="little")
        return raw.reshape(len(states), (part.stop - part.start) // 8, 64)[:, :, : self.cells]

    # The Game interface.

    def initial_state(self) -> np.ndarray:
        m = self.size // 2
        black = (1 << (m - 1) * self.size + m) | (1 << m * self.size + m - 1)  # e4 and d5 on 8x8
        white = (1 << (m - 1) * self.size + m - 1) | (1 << m * self.size + m)  # d4 and e5
        return self._state(np.array([black], np.uint64), np.array([white], np.uint64), np.zeros(1, np.int8))[0]

    def to_play(self, states: np.ndarray) -> np.ndarray:
        return states[:, COLOR].astype(np.int8)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        mask = np.empty((len(states), self.num_actions), dtype=bool)
        mask[:, : self.cells] = self._bits(states, LEGAL)[:, 0]
        mask[:, self.pass_action] = states[:, STATUS] == MUST_PASS
        return mask

    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Each action played (legal ones only); a pass leaves the discs as they are.  # [K, S], [K] -> [K, S]"""
        boards = self._bitboards(states)
        own, other = boards[:, 0], boards[:, 1]
        actions = np.asarray(actions, dtype=np.int64)
        cell = np.minimum(actions, self.cells - 1).astype(np.uint64)
        move = np.where(actions == self.pass_action, ZERO, ONE << cell)  # [K] one bit, or none
        flips = self._flips(own, other, move)
        return self._state(other & ~flips, own | move | flips, 1 - states[:, COLOR])

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        value = np.full(len(states), np.nan, dtype=np.float32)
        over = np.flatnonzero(states[:, STATUS] == OVER)
        if len(over):
            discs = self._bits(states[over], slice(0, 16)).sum(axis=2, dtype=np.int64)  # [k, 2] mover, other
            value[over] = np.sign(discs[:, 0] - discs[:, 1])
        return value

    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((len(states), *self.planes_shape), dtype=np.uint8)
        out[:] = self._bits(states, BITBOARDS).reshape(len(states), *self.planes_shape)
        return out

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return dihedral_planes_policy(k, planes, policy, self.size)

    def action_to_str(self, action: int) -> str:
        return self._names[int(action)]

    def parse_action(self, text: str) -> int:
        found = self._actions.get(text.strip().lower())
        if found is None:
            last = self._names[self.cells - 1]
            raise ValueError(
                f"{text!r} is not a move; write a cell a1-{last} (a1 top left, rows numbered downwards) or pass"
            )
        return found

    def parse_moves(self, line: str) -> list[int]:
        """Moves separated by spaces ("f5 d6 pass") or run together ("f5d6c3")."""
        return [self.parse_action(word) for word in split_moves(line)]

    def render(self, state: np.ndarray) -> str:
        """The board with X for black, O for white and * on the legal moves of the player to move."""
        planes = self.encode(state[None])[0].reshape(3, self.cells)
        mover = int(state[COLOR])
        marks = np.where(
            planes[0] == 1, MARKS[mover], np.where(planes[1] == 1, MARKS[1 - mover], np.where(planes[2] == 1, "*", "."))
        )
        black, white = self.disc_counts(state[None])[0]
        if state[STATUS] == OVER:
            footer = f"game over: X {black}, O {white}"
        else:
            footer = (
                f"{MARKS[mover]} to move{' (must pass)' if state[STATUS] == MUST_PASS else ''}: X {black}, O {white}"
            )
        return "\n".join([*draw_board(list(marks), self._names, self.size), footer])

    # Beyond the interface: for tests, puzzles and scoring.

    def state_from_rows(self, rows: list[str], to_move: str) -> np.ndarray:
        """The state of a board drawn as rows from the top ('X' black, 'O' white, '.' empty) with
        `to_move` ('X' or 'O') to move; its legal moves and status follow from the rules."""
        text = "".join(row.replace(" ", "") for row in rows)
        if len(rows) != self.size or len(text) != self.cells or set(text) - set("XO.*"):
            raise ValueError(f"draw {self.size} rows of {self.size} cells, each X, O or . (* is empty too)")
        black = sum(1 << i for i, mark in enumerate(text) if mark == "X")
        white = sum(1 << i for i, mark in enumerate(text) if mark == "O")
        color = MARKS.index(to_move)
        own, other = (black, white) if color == 0 else (white, black)
        return self._state(np.array([own], np.uint64), np.array([other], np.uint64), np.array([color], np.int8))[0]

    def disc_counts(self, states: np.ndarray) -> np.ndarray:
        """Black's and white's discs in each state.  # [K, S] -> [K, 2] int64"""
        discs = self._bits(states, slice(0, 16)).sum(axis=2, dtype=np.int64)  # [K, 2] mover, other
        black_moves = states[:, COLOR] == 0
        return np.where(black_moves[:, None], discs, discs[:, ::-1])


OTHELLO = register(Othello(8))
OTHELLO6 = register(Othello(6))
