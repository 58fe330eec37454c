"""Completion filters: keep-or-reject rules applied to teacher completions (numbers today)."""
