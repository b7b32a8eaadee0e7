"""Training with accelerate: the loop, its arguments and recipes, checkpoints."""
