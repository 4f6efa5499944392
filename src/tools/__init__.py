"""Maintenance commands that are not part of training or evaluation (e.g. `gpu_check` for a GPU machine)."""
