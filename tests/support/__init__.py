"""Helpers and data files of our tests (not test modules)."""
