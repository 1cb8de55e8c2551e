"""Invoke task collections, one module per topic; tasks.py assembles them."""
