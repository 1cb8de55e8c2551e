"""The trace proxy: ingest, query API, sinks and command line."""
