"""Connect Four (7 columns x 6 rows), the default game. Moves are columns 1-7 from the left.

State row (int8, 51 values): cells 0-41 row by row from the top row as rendered (0 empty,
1 first player X, -1 second player O), then the seven column heights, the number of moves
played, and 1 if the last move connected four (set by `play`, so no board scan is ever needed).
Search runs on bitboards instead (`ConnectFourKernel`, numba): a few shifts per move and win test.
"""

from __future__ import annotations

import numba
import numpy as np

from azjobs.games import register
from azjobs.games.base import Game
from azjobs.games.kernel import GameKernel

ROWS, COLS = 6, 7
CELLS = ROWS * COLS
HEIGHTS = CELLS  # index of column 0's height; column c's is HEIGHTS + c
PLY = HEIGHTS + COLS  # index of the move counter
WON = PLY + 1  # index of the flag: the player who just moved connected four
STATE_SIZE = WON + 1


def _windows_through(row: int, col: int) -> list[list[int]]:
    """Every four-in-a-row window on the board that contains cell (row, col), as cell indices."""
    found = []
    # A new stone is always the top of its column, so only the vertical window below it can win.
    found.append([(row + i) * COLS + col for i in range(4)] if row + 3 < ROWS else None)
    for dr, dc in ((0, 1), (1, 1), (1, -1)):  # horizontal, down-right, down-left
        for start in range(-3, 1):
            cells = [(row + (start + i) * dr, col + (start + i) * dc) for i in range(4)]
            inside = all(0 <= r < ROWS and 0 <= c < COLS for r, c in cells)
            found.append([r * COLS + c for r, c in cells] if inside else None)
    return [w for w in found if w is not None]


def _window_table() -> np.ndarray:
    """The windows through each cell, padded with the WON slot: it is 0 in any state one may play from,
    so a padded window never matches a stone.  # [CELLS, 13, 4]"""
    table = np.full((CELLS, 13, 4), WON, dtype=np.intp)
    for cell in range(CELLS):
        windows = _windows_through(*divmod(cell, COLS))
        table[cell, : len(windows)] = windows
    return table


WINDOWS = _window_table()  # [CELLS, 13, 4]


class ConnectFour(Game):
    name = "connect4"
    num_actions = COLS
    state_size = STATE_SIZE
    planes_shape = (2, ROWS, COLS)  # plane row 0 is the top row as rendered
    num_symmetries = 2  # identity, left-right mirror
    plane_names = ("the stones of the player to move", "the opponent's stones")
    encoding_doc = (
        "planes[p, r, c] is 1 where plane p has a stone in row r (0 = the top row) and column c (0 = the "
        "leftmost); action a drops a stone into column c = a, written a + 1 (1-7 from the left)"
    )
    default_settings = {
        "net_blocks": 4,
        "net_channels": 64,
        "num_simulations": 100,
        "dirichlet_alpha": 1.0,
        "temperature_moves": 10,
        "publish_every_steps": 50,
        # The winners of the strength-per-compute comparison (docs/strength.md; 7-minute runs on 2 cores):
        # playout cap randomization, FPU reduction, forced playouts, resignation.
        "full_search_prob": 0.25,
        "fpu_reduction": 0.2,
        "forced_playouts": 2.0,
        "resign_value": -0.9,
    }

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, dtype=np.int8)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        return (states[:, PLY] % 2).astype(np.int8)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        # A full board has every column full, so a draw needs no test of its own.
        return (states[:, HEIGHTS:PLY] < ROWS) & (states[:, WON] == 0)[:, None]

    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Drop a stone in each column `actions`; actions must be legal.  # [K, S], [K] -> [K, S]"""
        out = states.copy()
        rows = np.arange(len(states))
        cols = np.asarray(actions, dtype=np.intp)
        cells = (ROWS - 1 - states[rows, HEIGHTS + cols].astype(np.intp)) * COLS + cols  # [K]
        stones = np.where(states[:, PLY] % 2 == 0, 1, -1).astype(np.int8)  # [K]
        out[rows, cells] = stones
        out[rows, HEIGHTS + cols] += 1
        out[:, PLY] += 1
        lines = out[rows[:, None, None], WINDOWS[cells]]  # [K, 13, 4]
        out[:, WON] = (lines == stones[:, None, None]).all(axis=2).any(axis=1)
        return out

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        value = np.full(len(states), np.nan, dtype=np.float32)
        value[states[:, PLY] == CELLS] = 0.0
        value[states[:, WON] == 1] = -1.0  # the player who just moved has won
        return value

    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((len(states), *self.planes_shape), dtype=np.uint8)
        me = np.where(states[:, PLY] % 2 == 0, 1, -1).astype(np.int8)[:, None]  # [K, 1]
        cells = states[:, :CELLS]
        out[:, 0] = (cells == me).reshape(-1, ROWS, COLS)
        out[:, 1] = (cells == -me).reshape(-1, ROWS, COLS)
        return out

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if k == 0:
            return planes, policy
        if k == 1:  # policy entries are columns, so they mirror with the board
            return np.ascontiguousarray(planes[..., ::-1]), np.ascontiguousarray(policy[:, ::-1])
        raise ValueError(f"connect4 has symmetries 0 and 1, not {k}")

    def action_to_str(self, action: int) -> str:
        return str(int(action) + 1)

    def parse_action(self, text: str) -> int:
        text = text.strip()
        if len(text) != 1 or text not in "1234567":
            raise ValueError(f"{text!r} is not a column; write 1-7, counted from the left")
        return int(text) - 1

    def parse_moves(self, line: str) -> list[int]:
        """Columns separated by spaces ("4 4 5 3") or run together ("4453"), or a mix of both."""
        tokens: list[str] = []
        for token in line.split():
            tokens.extend(token if token.isdigit() else [token])  # every column is one digit
        return [self.parse_action(token) for token in tokens]

    def render(self, state: np.ndarray) -> str:
        marks = {1: "X", -1: "O", 0: "."}
        rows = [" ".join(marks[int(v)] for v in state[r * COLS : (r + 1) * COLS]) for r in range(ROWS)]
        return "\n".join([*rows, " ".join(str(c + 1) for c in range(COLS))])

    def kernel(self) -> GameKernel:
        cached = self.__dict__.get("_kernel")
        if cached is None:
            cached = self.__dict__["_kernel"] = ConnectFourKernel(self)
        return cached


# Bitboards (the layout of Pascal Pons' solver): column c holds bits 7c (bottom row) to 7c + 5 (top
# row), bit 7c + 6 stays empty so that no line runs from one column into the next. A kernel state is
# int64 [OWN, MASK, INFO]: the stones of the player to move, all stones, and ply + WON_FLAG * won.
OWN, MASK, INFO = 0, 1, 2
WON_FLAG = 256  # in INFO: the player who just moved connected four
PLY_BITS = WON_FLAG - 1
COLUMN_BITS = ROWS + 1
# Bit of each cell of the planes / state rows (row 0 is the top row as rendered).  # [ROWS, COLS]
CELL_BIT = np.array([[c * COLUMN_BITS + (ROWS - 1 - r) for c in range(COLS)] for r in range(ROWS)], np.int64)


@numba.njit(cache=True, inline="always")
def _connected(stones: int) -> bool:
    """Four in a line among `stones`: vertical, horizontal and both diagonals, by shifts."""
    for shift in (1, COLUMN_BITS, COLUMN_BITS - 1, COLUMN_BITS + 1):
        pairs = stones & (stones >> shift)
        if pairs & (pairs >> (2 * shift)):
            return True
    return False


@numba.njit(cache=True, inline="always")
def _play_one(src: np.ndarray, action: int, dst: np.ndarray) -> None:
    """dst = the state after `action` in src (both [3]; they may be the same row)."""
    own, mask, info = src[OWN], src[MASK], src[INFO]
    new_mask = mask | (mask + (np.int64(1) << (COLUMN_BITS * np.int64(action))))
    mover = own | (new_mask ^ mask)  # the mover's stones with the new one
    dst[OWN] = own ^ mask  # the opponent's stones: the player to move next
    dst[MASK] = new_mask
    dst[INFO] = (info & PLY_BITS) + 1 + (WON_FLAG if _connected(mover) else 0)


@numba.njit(cache=True, inline="always")
def _describe_one(state: np.ndarray, k: int, to_play: np.ndarray, terminal: np.ndarray, legal: np.ndarray) -> None:
    mask, info = state[MASK], state[INFO]
    ply, won = info & PLY_BITS, info >= WON_FLAG
    to_play[k] = ply & 1
    terminal[k] = -1.0 if won else (0.0 if ply == CELLS else np.nan)
    for c in range(COLS):
        legal[k, c] = not won and (mask >> (c * COLUMN_BITS + ROWS - 1)) & 1 == 0


@numba.njit(cache=True)
def _play(kstates: np.ndarray, actions: np.ndarray, out: np.ndarray) -> None:
    for k in range(kstates.shape[0]):
        _play_one(kstates[k], actions[k], out[k])


@numba.njit(cache=True)
def _describe(kstates: np.ndarray, to_play: np.ndarray, terminal: np.ndarray, legal: np.ndarray) -> None:
    for k in range(kstates.shape[0]):
        _describe_one(kstates[k], k, to_play, terminal, legal)


@numba.njit(cache=True)
def _expand(
    tree_state: np.ndarray,
    games: np.ndarray,
    parents: np.ndarray,
    actions: np.ndarray,
    nodes: np.ndarray,
    to_play: np.ndarray,
    terminal: np.ndarray,
    legal: np.ndarray,
) -> None:
    for k in range(games.shape[0]):
        child = tree_state[games[k], nodes[k]]
        _play_one(tree_state[games[k], parents[k]], actions[k], child)
        _describe_one(child, k, to_play, terminal, legal)


@numba.njit(cache=True)
def _encode(kstates: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
    for k in range(kstates.shape[0]):
        own = kstates[k, OWN]
        other = own ^ kstates[k, MASK]
        for r in range(ROWS):
            for c in range(COLS):
                out[k, 0, r, c] = (own >> bits[r, c]) & 1
                out[k, 1, r, c] = (other >> bits[r, c]) & 1


class ConnectFourKernel(GameKernel):
    """Connect Four on bitboards: kernel states `[K, 3]` int64 (OWN, MASK, INFO)."""

    def __init__(self, game: Game) -> None:
        super().__init__(game)
        self.width = 3
        self.dtype = np.dtype(np.int64)

    def from_states(self, states: np.ndarray) -> np.ndarray:
        states = np.asarray(states)
        cells = states[:, :CELLS].reshape(-1, ROWS, COLS)
        ply = states[:, PLY].astype(np.int64)
        me = np.where(ply % 2 == 0, 1, -1)[:, None, None]
        weights = np.int64(1) << CELL_BIT  # [ROWS, COLS]
        out = np.empty((len(states), 3), np.int64)
        out[:, OWN] = ((cells == me) * weights).sum(axis=(1, 2))
        out[:, MASK] = ((cells != 0) * weights).sum(axis=(1, 2))
        out[:, INFO] = ply + WON_FLAG * (states[:, WON] != 0)
        return out

    def to_states(self, kstates: np.ndarray) -> np.ndarray:
        own, mask, info = (kstates[:, i, None, None] for i in (OWN, MASK, INFO))
        ply = info & PLY_BITS
        me = np.where(ply % 2 == 0, 1, -1)
        own_cells = (own >> CELL_BIT) & 1  # [K, ROWS, COLS]
        any_cells = (mask >> CELL_BIT) & 1
        out = np.zeros((len(kstates), STATE_SIZE), np.int8)
        out[:, :CELLS] = (me * (2 * own_cells - 1) * any_cells).reshape(-1, CELLS)
        out[:, HEIGHTS:PLY] = any_cells.sum(axis=1)
        out[:, PLY] = ply[:, 0, 0]
        out[:, WON] = info[:, 0, 0] >= WON_FLAG
        return out

    def play(self, kstates: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = np.empty_like(kstates)
        _play(kstates, np.asarray(actions, np.int64), out)
        return out

    def describe(self, kstates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(kstates)
        to_play, terminal = np.empty(k, np.int8), np.empty(k, np.float32)
        legal = np.empty((k, COLS), bool)
        _describe(kstates, to_play, terminal, legal)
        return to_play, terminal, legal

    def expand(
        self, tree_state: np.ndarray, games: np.ndarray, parents: np.ndarray, actions: np.ndarray, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(games)
        to_play, terminal = np.empty(k, np.int8), np.empty(k, np.float32)
        legal = np.empty((k, COLS), bool)
        _expand(tree_state, games, parents, actions, nodes, to_play, terminal, legal)
        return to_play, terminal, legal

    def encode(self, kstates: np.ndarray, out: np.ndarray) -> np.ndarray:
        _encode(kstates, CELL_BIT, out)
        return out


CONNECT4 = register(ConnectFour())
