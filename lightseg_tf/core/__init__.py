"""Foundations every layer may use: atomic file I/O, the logger, the class palette, the stage runner."""
