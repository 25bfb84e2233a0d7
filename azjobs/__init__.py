"""azjobs: AlphaZero training for two-player board games as Redis/RQ batch jobs.

Self-play workers (RQ jobs on CPU machines) play many games at once with MCTS and send
their leaves in batches through Redis lists to an inference server (`gpu-serve`), which
runs the network and replies; finished games land on the storage root as HDF5 shards;
the trainer samples them, trains, and publishes versioned safetensors weights that the
servers hot-swap. `azjobs run` starts all of it on one machine with an embedded Redis.
"""

__version__ = "0.1.0"
