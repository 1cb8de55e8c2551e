"""gunicorn settings for the service, shared by the container and the local target.

Threads, not processes: service2 must hold many slow /stage/3 calls at once without one
holding up another, and the calls mostly sleep or wait on I/O.
"""
import os

# Imported once in gunicorn's master, so every worker it forks has them: a worker started
# again on SIGHUP (`inv dev` after a change to service/) boots in milliseconds.
import flask  # noqa: F401
import requests  # noqa: F401

bind = os.environ.get("BIND", "0.0.0.0:8080")
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# Envoy keeps upstream connections open; a short keep-alive would reset them mid-load.
keepalive = 75
timeout = 60
# A stopping worker (a pod's SIGTERM, `inv dev`'s reload) finishes what it serves, but also waits
# on idle connections Envoy holds open, up to this long: longer than the slowest request (the
# slow stage's 3.3 s), far shorter than gunicorn's 30 s, so old code stops answering promptly.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "5"))
accesslog = None  # the app writes its own JSON lines
errorlog = "-"
# gunicorn >= 25.1 opens a control socket at one fixed path under $HOME; several services on
# one machine (the local target) would fight over it, and nothing here uses it.
control_socket_disable = True
