"""Benchmarks behind `azjobs bench ...`; each prints one JSON object as its last line."""
