"""The trainer daemon."""
