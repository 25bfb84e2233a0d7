"""Rule checks for a `Game` implementation, for the tests of a game one brings to azjobs.

Each check uses only the `Game` interface and raises AssertionError naming what is wrong:
    summary = check_random_playouts(game, n_games=200, seed=0)
    check_encoding(game, summary.states)
    check_symmetries(game, summary.states, seed=0)
    check_kernel(game, summary.states, seed=0)  # the kernel search runs agrees with the methods
    check_batch_matches_single(game, summary.states, seed=0)
    assert perft(game, 3) == [...]  # positions after 1, 2, 3 plies, against published counts
    check_self_play(game)  # the real search and self-play, with a network that knows nothing
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from azjobs.games.base import Game


@dataclass(frozen=True)
class PlayoutSummary:
    """What a batch of random games went through."""

    states: np.ndarray  # [M, S] int8: every state visited, the start and the terminal ones included
    outcomes: np.ndarray  # [N] float32: each game's result for the first player (+1, 0, -1)
    lengths: np.ndarray  # [N] int64: moves played in each game
    legal_counts: np.ndarray  # [M] int64: legal actions in each state of `states` (0 in terminal ones)

    def mean_legal_moves(self) -> float:
        """The average number of legal moves where there is a move to make (for `dirichlet_alpha`)."""
        counts = self.legal_counts[self.legal_counts > 0]
        return float(counts.mean()) if len(counts) else 0.0


def _require(ok: bool | np.bool_, game: Game, message: str) -> None:
    # Not `assert`: these checks must still run under `python -O`.
    if not ok:
        raise AssertionError(f"{game.name}: {message}")


def check_interface(game: Game) -> None:
    """Constants, the start position, and the notation of every action round-tripping."""
    start = game.initial_state()
    _require(start.shape == (game.state_size,), game, f"initial_state shape {start.shape} != ({game.state_size},)")
    _require(start.dtype == np.int8, game, f"initial_state dtype {start.dtype} is not int8")
    _require(len(game.planes_shape) == 3, game, f"planes_shape {game.planes_shape} is not (C, H, W)")
    _require(game.num_actions > 0 and game.num_symmetries >= 1, game, "num_actions and num_symmetries must be >= 1")
    texts = [game.action_to_str(action) for action in range(game.num_actions)]
    for action, text in enumerate(texts):
        _require(isinstance(text, str) and text.strip() != "", game, f"action_to_str({action}) gave {text!r}")
        try:
            back = game.parse_action(text)
        except ValueError as error:
            raise AssertionError(f"{game.name}: parse_action({text!r}) failed for action {action}: {error}") from None
        _require(back == action, game, f"parse_action(action_to_str({action}) = {text!r}) gave {back}")
    _require(
        game.parse_moves(" ".join(texts)) == list(range(game.num_actions)),
        game,
        "parse_moves does not read back the notation of every action",
    )
    check_empty_batch(game)


def check_empty_batch(game: Game) -> None:
    """Every batched method takes a batch of no states: the search asks with one when no leaf needs it."""
    none = np.zeros((0, game.state_size), dtype=np.int8)
    try:
        shapes = {
            "legal_mask": game.legal_mask(none).shape,
            "terminal_value": game.terminal_value(none).shape,
            "to_play": game.to_play(none).shape,
            "play": game.play(none, np.zeros(0, dtype=np.int64)).shape,
            "encode": game.encode(none).shape,
        }
    except Exception as error:  # any failure here is the finding
        raise AssertionError(f"{game.name}: a batch of no states fails: {type(error).__name__}: {error}") from error
    expected = {
        "legal_mask": (0, game.num_actions),
        "terminal_value": (0,),
        "to_play": (0,),
        "play": (0, game.state_size),
        "encode": (0, *game.planes_shape),
    }
    for method, shape in shapes.items():
        _require(shape == expected[method], game, f"{method} of no states gave shape {shape}, not {expected[method]}")


def check_random_playouts(
    game: Game, n_games: int = 64, seed: int = 0, *, max_moves: int = 1_000, alternating: bool = True
) -> PlayoutSummary:
    """Play `n_games` uniformly random games at once, checking every batched method at every step.

    `alternating=False` is for games where a player may move twice in a row.
    """
    check_interface(game)
    rng = np.random.default_rng(seed)
    states = np.repeat(game.initial_state()[None], n_games, axis=0)  # [K, S] live games
    ids = np.arange(n_games)  # which game each live row is
    outcomes = np.full(n_games, np.nan, dtype=np.float32)
    lengths = np.zeros(n_games, dtype=np.int64)
    visited, legal_counts = [], []
    ply = 0
    while len(states):
        visited.append(states)
        mask, values, players = _check_step(game, states)
        legal_counts.append(mask.sum(axis=1, dtype=np.int64))
        done = ~np.isnan(values)
        outcomes[ids[done]] = np.where(players[done] == 0, values[done], -values[done])
        lengths[ids[done]] = ply
        states, ids, mask, players = states[~done], ids[~done], mask[~done], players[~done]
        if len(states):
            _require(ply < max_moves, game, f"{len(states)} random games still going after {max_moves} moves")
            scores = np.where(mask, rng.random(mask.shape), -1.0)  # [K, A] a random legal move per row
            states = _check_play(game, states, scores.argmax(axis=1), players, alternating)
            ply += 1
    return PlayoutSummary(np.concatenate(visited), outcomes, lengths, np.concatenate(legal_counts))


def _check_step(game: Game, states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes, dtypes and mutual consistency of legal_mask, terminal_value, to_play, encode, render."""
    k = len(states)
    mask = game.legal_mask(states)
    _require(mask.shape == (k, game.num_actions), game, f"legal_mask shape {mask.shape} != {(k, game.num_actions)}")
    _require(mask.dtype == np.bool_, game, f"legal_mask dtype {mask.dtype} is not bool")
    values = game.terminal_value(states)
    _require(
        values.shape == (k,) and values.dtype == np.float32,
        game,
        f"terminal_value gave {values.dtype} {values.shape}, not float32 ({k},)",
    )
    done = ~np.isnan(values)
    _require(np.isin(values[done], (-1.0, 0.0, 1.0)).all(), game, f"terminal values {np.unique(values[done])}")
    bad = np.flatnonzero(mask.any(axis=1) == done)
    _require(
        len(bad) == 0,
        game,
        "legal moves must be all False exactly in terminal states; not so in\n"
        + (game.render(states[bad[0]]) if len(bad) else ""),
    )
    players = game.to_play(states)
    _require(players.shape == (k,) and np.isin(players, (0, 1)).all(), game, "to_play must give 0 or 1 per state")
    planes = game.encode(states)
    _require(
        planes.shape == (k, *game.planes_shape) and planes.dtype == np.uint8,
        game,
        f"encode gave {planes.dtype} {planes.shape}, not uint8 {(k, *game.planes_shape)}",
    )
    text = game.render(states[0])
    _require(isinstance(text, str) and text != "", game, f"render gave {text!r}")
    # Rows must not influence one another: the same answers for the batch reversed.
    _require(np.array_equal(game.legal_mask(states[::-1]), mask[::-1]), game, "legal_mask depends on batch order")
    _require(
        np.array_equal(game.terminal_value(states[::-1]), values[::-1], equal_nan=True),
        game,
        "terminal_value depends on batch order",
    )
    return mask, values, players


def _check_play(
    game: Game, states: np.ndarray, actions: np.ndarray, players: np.ndarray, alternating: bool
) -> np.ndarray:
    """play: input untouched, shape and dtype kept, rows independent, turns alternating."""
    before = states.copy()
    nexts = game.play(states, actions)
    _require(np.array_equal(states, before), game, "play modified its input states")
    _require(
        nexts.shape == states.shape and nexts.dtype == np.int8,
        game,
        f"play gave {nexts.dtype} {nexts.shape}, not int8 {states.shape}",
    )
    _require(np.array_equal(game.play(states[::-1], actions[::-1]), nexts[::-1]), game, "play depends on batch order")
    if alternating:
        _require(np.array_equal(game.to_play(nexts), 1 - players), game, "to_play does not alternate after play")
    return nexts


def check_encoding(game: Game, states: np.ndarray, *, rules_follow_planes: bool = True) -> None:
    """encode: shape, dtype, `out=`, rows independent, input untouched.

    With `rules_follow_planes`, states with equal planes must have equal legal moves and results,
    since the network cannot tell them apart; leave it off for games whose rules see history.
    """
    before = states.copy()
    planes = game.encode(states)
    _require(np.array_equal(states, before), game, "encode modified its input states")
    _require(
        planes.shape == (len(states), *game.planes_shape) and planes.dtype == np.uint8,
        game,
        f"encode gave {planes.dtype} {planes.shape}, not uint8 {(len(states), *game.planes_shape)}",
    )
    out = np.full_like(planes, 255)
    written = game.encode(states, out=out)
    _require(written is out and np.array_equal(out, planes), game, "encode(states, out=out) must fill and return out")
    _require(np.array_equal(game.encode(states[::-1]), planes[::-1]), game, "encode depends on batch order")
    if rules_follow_planes:
        _check_rules_follow_planes(game, states, planes)


def _check_rules_follow_planes(game: Game, states: np.ndarray, planes: np.ndarray) -> None:
    keys = planes.reshape(len(planes), -1)
    _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    mask, values = game.legal_mask(states), game.terminal_value(states)
    same_mask = (mask == mask[first[group]]).all(axis=1)
    same_value = np.isclose(values, values[first[group]], equal_nan=True)
    bad = np.flatnonzero(~(same_mask & same_value))
    _require(
        len(bad) == 0,
        game,
        "two states with the same planes differ in legal moves or result:\n"
        + (f"{game.render(states[bad[0]])}\nand\n{game.render(states[first[group[bad[0]]]])}" if len(bad) else ""),
    )


def check_symmetries(game: Game, states: np.ndarray, seed: int = 0, *, closed: bool = False) -> int:
    """Every symmetry on the planes and policies of `states`; returns how many images were among `states`.

    Where the image of a state's planes is the encoding of another state given, that state's legal
    moves must be the image of the first's, and its result the same. `closed=True` demands that every
    image be found (pass a set closed under the symmetries, such as every reachable state).
    """
    rng = np.random.default_rng(seed)
    planes = game.encode(states)  # [K, C, H, W]
    policy = rng.random((len(states), game.num_actions)).astype(np.float32)  # [K, A]
    policy /= policy.sum(axis=1, keepdims=True)
    index = {row.tobytes(): i for i, row in enumerate(planes)}
    found = 0
    for k in range(game.num_symmetries):
        image_planes, image_policy = _check_one_symmetry(game, k, planes, policy)
        _check_permutes_actions(game, k, planes[:1])
        _check_has_inverse(game, k, planes, policy, image_planes, image_policy)
        found += _check_images(game, k, states, planes, image_planes, index, closed)
    return found


def _check_one_symmetry(game: Game, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    planes_in, policy_in = planes.copy(), policy.copy()
    image_planes, image_policy = game.symmetry(k, planes, policy)
    _require(
        np.array_equal(planes, planes_in) and np.array_equal(policy, policy_in),
        game,
        f"symmetry {k} modified its input",
    )
    _require(
        image_planes.shape == planes.shape and image_planes.dtype == planes.dtype,
        game,
        f"symmetry {k} changed planes to {image_planes.dtype} {image_planes.shape}",
    )
    _require(
        image_policy.shape == policy.shape and image_policy.dtype == policy.dtype,
        game,
        f"symmetry {k} changed policies to {image_policy.dtype} {image_policy.shape}",
    )
    if k == 0:
        _require(
            np.array_equal(image_planes, planes) and np.array_equal(image_policy, policy),
            game,
            "symmetry 0 must be the identity",
        )
    _require(np.allclose(image_policy.sum(axis=1), policy.sum(axis=1)), game, f"symmetry {k} changed policy sums")
    counts = planes.sum(axis=(2, 3), dtype=np.int64)
    _require(
        np.array_equal(image_planes.sum(axis=(2, 3), dtype=np.int64), counts),
        game,
        f"symmetry {k} changed how many cells are set in a plane",
    )
    return image_planes, image_policy


def _check_permutes_actions(game: Game, k: int, planes: np.ndarray) -> None:
    actions = game.num_actions
    _, moved = game.symmetry(k, np.repeat(planes, actions, axis=0), np.eye(actions, dtype=np.float32))
    is_permutation = (np.sort(moved, axis=None) == np.repeat([0.0, 1.0], [actions * (actions - 1), actions])).all()
    _require(
        is_permutation and (moved.sum(axis=0) == 1).all() and (moved.sum(axis=1) == 1).all(),
        game,
        f"symmetry {k} does not permute the actions",
    )


def _check_has_inverse(
    game: Game, k: int, planes: np.ndarray, policy: np.ndarray, image_planes: np.ndarray, image_policy: np.ndarray
) -> None:
    for j in range(game.num_symmetries):
        back_planes, back_policy = game.symmetry(j, image_planes, image_policy)
        if np.array_equal(back_planes, planes) and np.array_equal(back_policy, policy):
            return
    raise AssertionError(f"{game.name}: no symmetry undoes symmetry {k}")


def _check_images(
    game: Game,
    k: int,
    states: np.ndarray,
    planes: np.ndarray,
    image_planes: np.ndarray,
    index: dict[bytes, int],
    closed: bool,
) -> int:
    """Where state j's planes are the image of state i's, j's legal moves and result follow from i's."""
    mask = game.legal_mask(states)
    values = game.terminal_value(states)
    _, image_mask = game.symmetry(k, planes, mask.astype(np.float32))  # legal moves carried like a policy
    images = np.array([index.get(row.tobytes(), -1) for row in image_planes], dtype=np.int64)  # [K] j or -1
    if closed and (images < 0).any():
        outside = states[np.flatnonzero(images < 0)[0]]
        raise AssertionError(f"{game.name}: symmetry {k} maps a state outside the given set:\n{game.render(outside)}")
    i = np.flatnonzero(images >= 0)
    j = images[i]
    ok = ((image_mask[i] > 0.5) == mask[j]).all(axis=1) & np.isclose(values[i], values[j], equal_nan=True)
    if not ok.all():
        first = states[i[np.flatnonzero(~ok)[0]]]
        raise AssertionError(
            f"{game.name}: symmetry {k} maps a state to one with other legal moves or "
            f"another result, from\n{game.render(first)}"
        )
    return len(i)


def check_kernel(game: Game, states: np.ndarray, seed: int = 0) -> None:
    """The game's search kernel (`game.kernel()`) agrees with its `Game` methods on `states  # [M, S]`:
    state conversion both ways, describe, encode, and play / expand of one random legal action each."""
    kernel = game.kernel()
    ks = kernel.from_states(states)
    _require(
        ks.shape == (len(states), kernel.width) and ks.dtype == kernel.dtype,
        game,
        f"kernel states {ks.dtype} {ks.shape}, expected {kernel.dtype} ({len(states)}, {kernel.width})",
    )
    _require(np.array_equal(kernel.to_states(ks), states), game, "kernel to_states(from_states(s)) != s")
    to_play, terminal, legal = kernel.describe(ks)
    _require(np.array_equal(to_play, game.to_play(states)), game, "kernel to_play differs from the game's")
    _require(
        np.array_equal(terminal, game.terminal_value(states), equal_nan=True),
        game,
        "kernel terminal_value differs from the game's",
    )
    _require(np.array_equal(legal, game.legal_mask(states)), game, "kernel legal mask differs from the game's")
    planes = np.empty((len(states), *game.planes_shape), np.uint8)
    _require(np.array_equal(kernel.encode(ks, planes), game.encode(states)), game, "kernel planes differ")
    live = np.flatnonzero(legal.any(axis=1))
    rng = np.random.default_rng(seed)
    actions = np.array([rng.choice(np.flatnonzero(legal[i])) for i in live], np.int64)
    after = game.play(states[live], actions)
    _require(
        np.array_equal(kernel.to_states(kernel.play(ks[live], actions)), after),
        game,
        "kernel play differs from the game's",
    )
    # expand: parents in node 0 of a one-game-per-row tree, children written to node 1.
    tree = np.zeros((len(live), 2, kernel.width), kernel.dtype)
    tree[:, 0] = ks[live]
    rows, ones = np.arange(len(live)), np.ones(len(live), np.int32)
    described = kernel.expand(tree, rows, np.zeros_like(ones), actions.astype(np.int32), ones)
    _require(np.array_equal(kernel.to_states(tree[:, 1]), after), game, "kernel expand wrote other states than play")
    for got, want, what in zip(
        described,
        (game.to_play(after), game.terminal_value(after), game.legal_mask(after)),
        ("to_play", "terminal_value", "legal mask"),
    ):
        _require(np.array_equal(got, want, equal_nan=True), game, f"kernel expand's {what} differs from the game's")


def check_batch_matches_single(game: Game, states: np.ndarray, seed: int = 0, *, max_states: int = 200) -> None:
    """Each state alone (a batch of one) gets the answers it gets in a batch: array code often breaks at K = 1."""
    rng = np.random.default_rng(seed)
    states = states[rng.permutation(len(states))[:max_states]]
    mask, values = game.legal_mask(states), game.terminal_value(states)
    players, planes = game.to_play(states), game.encode(states)
    live = mask.any(axis=1)
    actions = np.where(mask, rng.random(mask.shape), -1.0).argmax(axis=1)  # [K] a random legal move per row
    nexts = game.play(states[live], actions[live])
    for i, state in enumerate(states):
        one = state[None]
        _require(
            np.array_equal(game.legal_mask(one)[0], mask[i]), game, f"legal_mask alone differs:\n{game.render(state)}"
        )
        _require(
            np.array_equal(game.terminal_value(one), values[i : i + 1], equal_nan=True),
            game,
            f"terminal_value alone differs:\n{game.render(state)}",
        )
        _require(game.to_play(one)[0] == players[i], game, f"to_play alone differs:\n{game.render(state)}")
        _require(np.array_equal(game.encode(one)[0], planes[i]), game, f"encode alone differs:\n{game.render(state)}")
    for row, i in enumerate(np.flatnonzero(live).tolist()):
        alone = game.play(states[i][None], actions[i : i + 1])[0]
        _require(
            np.array_equal(alone, nexts[row]),
            game,
            f"play of {game.action_to_str(int(actions[i]))} alone differs:\n{game.render(states[i])}",
        )


def perft(game: Game, depth: int, state: np.ndarray | None = None) -> list[int]:
    """How many move sequences of 1, 2, ..., `depth` plies there are from `state` (the start by default).

    A game that ends earlier is not counted further, as in chess and Othello perft tables; a pass is a
    ply. The last ply is counted, not played (bulk counting).
    """
    states = (game.initial_state() if state is None else state)[None]  # [K, S] the positions after each ply
    counts = []
    for ply in range(depth):
        mask = game.legal_mask(states)  # [K, A]
        counts.append(int(mask.sum()))
        if ply + 1 < depth:
            rows, actions = np.nonzero(mask)
            states = game.play(states[rows], actions)
    return counts


def check_self_play(game: Game, n_games: int = 8, num_simulations: int = 8, seed: int = 0) -> None:
    """Self-play as a job runs it (the real search, a uniform evaluator in place of the network), to the
    end of every game, and the training records it gives: shapes, policies, values, results."""
    # Here, so that the rule checks need no search.
    from azjobs.search.config import SearchConfig, SelfPlayConfig
    from azjobs.search.selfplay import play_games

    def uniform(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(planes), game.num_actions), np.float32), np.zeros(len(planes), np.float32)

    config = SelfPlayConfig(search=SearchConfig(num_simulations=num_simulations))
    try:
        records = play_games(game, config, uniform, n_games, np.random.default_rng(seed))
    except Exception as error:  # the traceback stays chained below this message
        raise AssertionError(f"{game.name}: self-play fails: {type(error).__name__}: {error}") from error
    positions = int(records.game_lengths.sum())
    _require(
        records.games == n_games and records.positions == positions,
        game,
        f"self-play gave {records.games} games and {records.positions} positions for {positions} moves",
    )
    _require(records.planes.shape == (positions, *game.planes_shape), game, f"recorded planes {records.planes.shape}")
    _require(records.policy.shape == (positions, game.num_actions), game, f"recorded policy {records.policy.shape}")
    _require(
        np.allclose(records.policy.sum(axis=1), 1.0) and (records.policy >= 0).all(),
        game,
        "recorded policies are not distributions",
    )
    _require(
        np.isin(records.value, (-1.0, 0.0, 1.0)).all() and np.isin(records.results, (-1, 0, 1)).all(),
        game,
        "recorded values or results are not +1, 0 or -1",
    )
