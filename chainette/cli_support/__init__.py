"""Helpers behind ``chainette.cli``: error handling, chain loading, the live run display."""
