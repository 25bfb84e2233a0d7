"""Search: batched MCTS (PUCT or Gumbel) over array trees, and self-play built on it."""

from azjobs.search.config import SearchConfig, SelfPlayConfig
from azjobs.search.mcts import Evaluate, Search, SearchResult, best_actions, new_search, search
from azjobs.search.puct import choose_moves
from azjobs.search.selfplay import play_games, play_pipelined
from azjobs.search.tree import NO_ACTION, UNVISITED, Tree

__all__ = [
    "NO_ACTION",
    "UNVISITED",
    "Evaluate",
    "Search",
    "SearchConfig",
    "SearchResult",
    "SelfPlayConfig",
    "Tree",
    "best_actions",
    "choose_moves",
    "new_search",
    "play_games",
    "play_pipelined",
    "search",
]
