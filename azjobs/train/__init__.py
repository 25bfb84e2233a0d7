"""The trainer daemon: `trainer` (its loop), `learner` (the training step), `schedule` (self-play and
evaluation jobs, the train/play ratio), `progress` (curves, ratings, heartbeat), `precision`."""
