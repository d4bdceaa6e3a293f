"""Jupyter notebooks: captured, re-executed with nbclient and compared cell by cell."""
