"""The commands a user runs, start to end: demo and evaluate (pipeline), ablate, search, env, and the demo report."""
