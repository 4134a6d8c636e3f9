"""Measures of generation quality on the small offline data (shared/quality.md)."""
