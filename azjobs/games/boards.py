"""Helpers for games on a square board: the eight symmetries of the square and a1-style coordinates."""

from __future__ import annotations

import re

import numpy as np

NUM_DIHEDRAL = 8  # identity, three quarter turns, and each of those mirrored


def dihedral(k: int, grid: np.ndarray) -> np.ndarray:
    """Symmetry `k` (0-7) of the square on the last two axes: k // 2 quarter turns, then a left-right
    mirror if k is odd. A view; `np.ascontiguousarray` it before handing it on.  # [..., N, N]"""
    if not 0 <= k < NUM_DIHEDRAL:
        raise ValueError(f"a square has symmetries 0-7, not {k}")
    grid = np.rot90(grid, k // 2, axes=(-2, -1))
    return grid[..., ::-1] if k % 2 else grid


def dihedral_planes_policy(k: int, planes: np.ndarray, policy: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`Game.symmetry` for a game whose actions are the cells row by row, perhaps followed by others
    (a pass) that no symmetry moves.  # [K, C, N, N], [K, A] -> same shapes"""
    cells = size * size
    board = dihedral(k, policy[:, :cells].reshape(-1, size, size)).reshape(-1, cells)
    image_policy = np.concatenate([board, policy[:, cells:]], axis=1) if policy.shape[1] > cells else board
    return np.ascontiguousarray(dihedral(k, planes)), np.ascontiguousarray(image_policy)


def cell_names(size: int, *, first_row: str) -> list[str]:
    """The name of each cell, row by row from the top as drawn: columns a, b, ... from the left, rows
    numbered from 1 at the top (`first_row="top"`, as in Othello) or the bottom ("bottom", as in Gomoku)."""
    if first_row not in ("top", "bottom"):
        raise ValueError(f"first_row is 'top' or 'bottom', not {first_row!r}")
    if not 1 <= size <= 26:
        raise ValueError(f"board size {size} is not 1-26")
    number = (lambda r: r + 1) if first_row == "top" else (lambda r: size - r)
    return [f"{chr(ord('a') + c)}{number(r)}" for r in range(size) for c in range(size)]


def split_moves(line: str) -> list[str]:
    """Move words of a line in a1-style notation, spaced ("f5 d6 pass") or run together ("f5d6")."""
    return re.findall(r"[A-Za-z]+\d*|[^A-Za-z\s]+", line)


def draw_board(cells: list[str], names: list[str], size: int) -> list[str]:
    """Text rows of a board: one mark per cell, column letters above and below, row numbers at both sides."""
    letters = "   " + " ".join(chr(ord("a") + c) for c in range(size))
    rows = [letters]
    for r in range(size):
        number = names[r * size][1:]
        rows.append(f"{number:>2} " + " ".join(cells[r * size : (r + 1) * size]) + f" {number}")
    rows.append(letters)
    return rows
