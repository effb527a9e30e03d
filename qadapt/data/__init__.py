"""Datasets: local copies in ``data_dir`` (filled by ``make data``) read by the same code as hub downloads."""
