"""The trace proxy's HTTP face over the store: the rest of Zipkin's query API (api.py) and
the web UI at / (pages.py, templates/, static/). app.py registers both blueprints."""
