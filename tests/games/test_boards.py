"""The square-board helpers: the eight symmetries, cell names and move splitting."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games.boards import cell_names, dihedral, dihedral_planes_policy, draw_board, split_moves


def test_dihedral_gives_the_eight_symmetries_of_the_square() -> None:
    grid = np.arange(9).reshape(3, 3)
    images = {dihedral(k, grid).tobytes() for k in range(8)}
    assert len(images) == 8  # all different
    np.testing.assert_array_equal(dihedral(0, grid), grid)
    np.testing.assert_array_equal(dihedral(1, grid), grid[:, ::-1])  # left-right mirror
    np.testing.assert_array_equal(dihedral(4, grid), grid[::-1, ::-1])  # half turn
    np.testing.assert_array_equal(dihedral(2, grid), [[2, 5, 8], [1, 4, 7], [0, 3, 6]])  # quarter turn left
    with pytest.raises(ValueError, match="symmetries 0-7"):
        dihedral(8, grid)


def test_planes_and_policy_turn_together_and_extra_actions_stay() -> None:
    planes = np.zeros((1, 1, 3, 3), np.uint8)
    planes[0, 0, 0, 0] = 1  # a stone on the top left cell
    policy = np.zeros((1, 10), np.float32)
    policy[0, 0], policy[0, 9] = 0.75, 0.25  # the top left cell, and a pass
    for k in range(8):
        image_planes, image_policy = dihedral_planes_policy(k, planes, policy, 3)
        assert image_planes.flags.c_contiguous and image_policy.flags.c_contiguous
        cell = int(np.flatnonzero(image_planes[0, 0].reshape(-1))[0])
        assert image_policy[0, cell] == 0.75 and image_policy[0, 9] == 0.25


def test_cell_names() -> None:
    assert cell_names(3, first_row="top") == ["a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"]
    assert cell_names(3, first_row="bottom")[:3] == ["a3", "b3", "c3"]
    assert cell_names(15, first_row="bottom")[7 * 15 + 7] == "h8"
    with pytest.raises(ValueError):
        cell_names(3, first_row="left")


def test_split_moves() -> None:
    assert split_moves("f5d6 c3  pass e10") == ["f5", "d6", "c3", "pass", "e10"]
    assert split_moves("f5,d6") == ["f5", ",", "d6"]  # the comma is left for the parser to refuse
    assert split_moves("") == []


def test_draw_board() -> None:
    rows = draw_board(list("XO......."), cell_names(3, first_row="bottom"), 3)
    assert rows == ["   a b c", " 3 X O . 3", " 2 . . . 2", " 1 . . . 1", "   a b c"]
