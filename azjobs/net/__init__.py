"""The policy-value network and its weights as safetensors bytes."""

from azjobs.net.model import PolicyValueNet, build_model
from azjobs.net.weights import load_into, model_from_bytes, read_metadata, to_bytes

__all__ = ["PolicyValueNet", "build_model", "load_into", "model_from_bytes", "read_metadata", "to_bytes"]
