"""Evaluation: retrieval, classification and grounding (notebooks 09-11)."""
