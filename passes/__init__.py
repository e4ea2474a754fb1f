"""Transformations over the qmm and mc2 dialects, one pass per file."""
