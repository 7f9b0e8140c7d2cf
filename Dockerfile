# syntax=docker/dockerfile:1
# The wattscale operator image: the package and its runtime dependencies in a venv, nothing else.
#
#   docker build -t ghcr.io/wattscale/wattscale:0.1.0 --build-arg VERSION=0.1.0 .
#
# Both stages use the same base so the venv's interpreter path (/usr/local/bin/python3.11) exists
# in the runtime image. Runs as uid/gid 65532 and works with a read-only root filesystem (bytecode
# is compiled at build time; HOME is /tmp, which the Helm chart mounts as an emptyDir).
#
# The base is pinned by digest: python:3.11-slim as resolved on 2026-07-11 (3.11.15-slim-trixie,
# the multi-arch index). Moving it is a deliberate commit, like an upgrade in constraints.txt,
# from which every Python package here is installed.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:e031123e3d85762b141ad1cbc56452ba69c6e722ebf2f042cc0dc86c47c0d8b3

# ---- builder: build the wheel and install it with its dependencies into /opt/wattscale ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/wattscale
WORKDIR /src
# Only what the package build needs (see .dockerignore): metadata, readme, the pins, the package.
COPY pyproject.toml README.md constraints.txt ./
COPY operator/ ./operator/
RUN /opt/wattscale/bin/pip install -c constraints.txt --upgrade pip \
    && /opt/wattscale/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/wattscale/bin/pip install -c constraints.txt /wheels/wattscale-*.whl \
    && /opt/wattscale/bin/python -m compileall -q /opt/wattscale/lib \
    && /opt/wattscale/bin/wattscale --version

# ---- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wattscale" \
      org.opencontainers.image.description="Kubernetes operator that serves LLMs with vLLM at the lowest energy cost the latency SLO allows" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/wattscale/wattscale" \
      org.opencontainers.image.url="https://github.com/wattscale/wattscale" \
      org.opencontainers.image.documentation="https://github.com/wattscale/wattscale/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="wattscale"
RUN groupadd --system --gid 65532 wattscale \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin wattscale
COPY --from=builder /opt/wattscale /opt/wattscale
ENV PATH=/opt/wattscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
# 9464: Prometheus metrics (/metrics); 8080: kopf's liveness endpoint (/healthz).
EXPOSE 9464 8080
ENTRYPOINT ["wattscale"]
CMD ["run", "--all-namespaces", "--standalone"]
