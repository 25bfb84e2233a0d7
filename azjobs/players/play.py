"""`azjobs play`: a game against the run's newest agent in the terminal, in the game's own notation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

import numpy as np

from azjobs.players.bestmove import Agent


def evaluation(agent: Agent, state: np.ndarray) -> float:
    """The value of `state` for the player who just moved into it: the result if the game is over,
    else minus the network's value for the player to move (-1 loss, 0 draw, +1 win)."""
    game = agent.game
    over = game.terminal_value(state[None])[0]
    if not np.isnan(over):
        return -float(over)
    _, values = agent.player.evaluate(game.encode(state[None]))
    return -float(values[0])


def play(
    agent: Agent,
    *,
    sims: int,
    human_first: bool,
    read: TextIO,
    say: Callable[[str], None],
    seed: int = 0,
) -> str:
    """Play one game, human moves read from `read`; the outcome: "you won", "azjobs won", "draw" or "quit"."""
    game, player = agent.game, agent.with_sims(sims)
    state = game.initial_state()
    human = 0 if human_first else 1
    say(
        f"{game.name} against weights version {agent.version}, {sims} simulations per move; "
        f"you are {'first' if human_first else 'second'}. Type a move, or q to quit."
    )
    move_number = 0
    while not game.is_terminal(state):
        say(game.render(state))
        if int(game.to_play(state[None])[0]) == human:
            action = _ask(agent, state, read, say)
            if action is None:
                return "quit"
        else:
            action = int(player.choose(state[None], np.random.default_rng(seed + move_number))[0])
            move = game.action_to_str(action)
            value = evaluation(agent, game.play(state[None], np.array([action]))[0])
            say(f"azjobs plays {move} (its evaluation: {value:+.2f} for itself; -1 loss, 0 draw, +1 win)")
        state = game.play(state[None], np.array([action]))[0]
        move_number += 1
    say(game.render(state))
    last_mover = 1 - int(game.to_play(state[None])[0])
    result = -float(game.terminal_value(state[None])[0])  # for the player who made the last move
    outcome = "draw" if result == 0 else "you won" if (last_mover == human) else "azjobs won"
    say(f"game over: {outcome}")
    return outcome


def _ask(agent: Agent, state: np.ndarray, read: TextIO, say: Callable[[str], None]) -> int | None:
    """The human's legal move, asking again until one comes; None on q or end of input."""
    game = agent.game
    legal = [game.action_to_str(int(a)) for a in np.flatnonzero(game.legal_mask(state[None])[0])]
    while True:
        say(f"your move ({' '.join(legal)}):")
        line = read.readline()
        if not line or line.strip().lower() in ("q", "quit", "exit"):
            return None
        try:
            action = game.parse_action(line.strip())
        except ValueError as e:
            say(f"not a move: {e}")
            continue
        if game.action_to_str(action) not in legal:
            say(f"{line.strip()} is not legal here; legal moves: {' '.join(legal)}")
            continue
        return action
