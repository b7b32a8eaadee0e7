"""Evaluation: the `visage evaluate` runner and the baselines it scores."""
