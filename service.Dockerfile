# One image for the Flask service (gunicorn, the default command) and the trace proxy
# (`trace-proxy`). `inv build` builds it for the host's architecture (amd64 or arm64: the
# base image is multi-arch and every dependency is pure Python or ships wheels for both).
# The base is a build argument so a mirror of the Python image (or, on a machine without a
# registry, any Debian-like image with python3 and its venv module) can stand in:
# `inv build --base-image IMAGE`. The default below is the one `inv build` uses.
ARG BASE_IMAGE=python:3.14.6-slim-trixie

# Stage 1: the project itself as a wheel, built in a folder this stage alone sees, so its
# build leftovers (build/, *.egg-info) never reach the image.
FROM ${BASE_IMAGE} AS project
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml ./
COPY service/ service/
COPY trace_proxy/ trace_proxy/
# pyproject.toml names README.md as the package's readme, so building needs one; an empty
# stand-in keeps docs out of the image, so editing them never rebuilds or rolls the pods.
# The venv holds only the project (its dependencies come from the lock, below).
RUN touch README.md \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-deps .

# Stage 2: the image. Dependencies at the locked versions in a layer of their own (a code
# change reuses it), then the project from stage 1, merged into the same venv.
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The manifests run as 10001:10001 (runAsUser, runAsGroup): the same ids here, and outside
# the system range so useradd has nothing to warn about.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

# The base's pip installs into a venv without pip of its own: no installer in the image.
COPY service.requirements.txt /opt/venv/requirements.txt
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-deps -r /opt/venv/requirements.txt \
    && pip --python /opt/venv/bin/python check

COPY --from=project /opt/venv/ /opt/venv/

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080 9411
CMD ["gunicorn", "-c", "python:service.gunicorn_conf", "service:create_app()"]
