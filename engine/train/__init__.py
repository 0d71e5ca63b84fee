"""Training: `run_training(cfg)` turns a RunConfig into a run folder (adapter, checkpoints, events)."""
