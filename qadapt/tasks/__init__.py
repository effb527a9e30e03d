"""Evaluation tasks. ``perplexity``: WikiText token/word perplexity and bits per byte."""
