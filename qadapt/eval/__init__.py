"""Scoring: perplexity windows and the LM-head scorer (perplexity.py), multiple choice (multiple_choice.py),
GLUE metrics (metrics.py)."""
