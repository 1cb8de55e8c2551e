"""The way in: read a POSTed body (size limits, gzip, content type) and parse its spans
into the proxy's one internal shape (zipkin_json.py for Zipkin v1 and v2 JSON)."""
