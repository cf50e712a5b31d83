"""The training loop and what it needs alone: resume, the run log, the learning-rate schedule."""
