"""The game interface: batched rules over rows of a small int8 state array.

Every method takes many states at once (`states  # [K, S] int8`) so that search and
encoding run as array code over all the games of a job, never per-node Python objects.
A game module implements `Game` and calls `azjobs.games.register` on an instance (docs/your-own-game.md).

Conventions:
- A state is one row of `state_size` int8 values; its layout is the game's own business.
- Actions are integers in `[0, num_actions)`; `legal_mask` says which are allowed.
- `terminal_value` is NaN while the game goes on; at the end it is the result for the
  player to move in that state: +1 win, 0 draw, -1 loss.
- Planes are uint8 features `[K, C, H, W]` seen from the player to move (own stones
  first), so the network never needs to know whose turn it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from azjobs.games.kernel import GameKernel


class Game(ABC):
    """Rules of a two-player, zero-sum, perfect-information board game."""

    name: str
    num_actions: int  # A
    state_size: int  # S
    planes_shape: tuple[int, int, int]  # (C, H, W)
    num_symmetries: int  # 1 = identity only
    # What an exported agent's card says of the encoding (optional): one line per plane, and how
    # the planes' rows and columns and the actions map onto the board and the notation.
    plane_names: tuple[str, ...] = ()
    encoding_doc: str = ""
    # Per-game overrides of `Settings` defaults (network size, simulations, ...).
    default_settings: dict[str, Any] = {}

    @abstractmethod
    def initial_state(self) -> np.ndarray:
        """The start position.  # [S] int8"""

    @abstractmethod
    def to_play(self, states: np.ndarray) -> np.ndarray:
        """Whose turn it is: 0 for the first player, 1 for the second.  # [K] int8"""

    @abstractmethod
    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        """Legal actions.  # [K, S] -> [K, A] bool (all False in terminal states)"""

    @abstractmethod
    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """New states after each action; the input is not modified.  # [K, S], [K] -> [K, S]"""

    @abstractmethod
    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        """NaN while ongoing, else the result for the player to move.  # [K] float32"""

    @abstractmethod
    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Network input planes, written into `out` when given.  # [K, S] -> [K, C, H, W] uint8"""

    @abstractmethod
    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply board symmetry `k` (0 = identity) to planes `[K, C, H, W]` and policies `[K, A]`."""

    @abstractmethod
    def action_to_str(self, action: int) -> str:
        """Move notation of one action."""

    @abstractmethod
    def parse_action(self, text: str) -> int:
        """The action a move's notation names; ValueError if it names none."""

    @abstractmethod
    def render(self, state: np.ndarray) -> str:
        """A multi-line text drawing of one state."""

    # Shared helpers, built on the methods above.

    def parse_moves(self, line: str) -> list[int]:
        """Actions of a move list written in the game's notation, separated by spaces."""
        return [self.parse_action(token) for token in line.split()]

    def state_after(self, actions: list[int]) -> np.ndarray:
        """The state reached by playing `actions` from the start; ValueError on an illegal move."""
        state = self.initial_state()[None]
        for i, action in enumerate(actions):
            if not 0 <= action < self.num_actions or not self.legal_mask(state)[0, action]:
                raise ValueError(f"move {i + 1} ({self.action_to_str(action)}) is illegal")
            state = self.play(state, np.array([action]))
        return state[0]

    def is_terminal(self, state: np.ndarray) -> bool:
        return bool(~np.isnan(self.terminal_value(state[None])[0]))

    def kernel(self) -> GameKernel:
        """The rules as search runs them (see `azjobs.games.kernel`). This default runs the methods
        above on state rows as they are; a game may return a faster kernel of its own."""
        from azjobs.games.kernel import GameKernel

        cached = self.__dict__.get("_kernel")
        if cached is None:
            cached = self.__dict__["_kernel"] = GameKernel(self)
        return cached
