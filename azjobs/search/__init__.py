"""Search: batched PUCT MCTS over array trees, and self-play built on it."""

from azjobs.search.mcts import Evaluate, Search, SearchConfig, SearchResult, best_actions, new_search, search
from azjobs.search.tree import NO_ACTION, UNVISITED, Tree
from azjobs.search.selfplay import choose_moves, play_games, play_pipelined

__all__ = [
    "NO_ACTION",
    "UNVISITED",
    "Evaluate",
    "Search",
    "SearchConfig",
    "SearchResult",
    "Tree",
    "best_actions",
    "choose_moves",
    "new_search",
    "play_games",
    "play_pipelined",
    "search",
]
