"""Tidy results: one row per run in ``results/runs.csv``, pivoted into markdown tables."""

from .store import append_row, load_rows, save_figure_atomic, write_text_atomic

__all__ = ["append_row", "load_rows", "save_figure_atomic", "write_text_atomic"]
