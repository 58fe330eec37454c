"""Prompt generators: the user messages sent to teachers (numbers today)."""
