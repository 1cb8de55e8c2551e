"""Across the whole stack: the trace on every target, hostile input at every door, secrets."""
