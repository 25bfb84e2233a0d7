"""Evaluating positions: in-process (`LocalEvaluator`) or through Redis (`InferenceClient` -> `server`)."""

from azjobs.inference.client import InferenceClient
from azjobs.inference.local import LocalEvaluator

__all__ = ["InferenceClient", "LocalEvaluator"]
