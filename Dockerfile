# syntax=docker/dockerfile:1
# Daguerre's image: one image for gateways and workers (the command picks the role).
#
#   docker build -t daguerre:cpu .                                   # CPU torch (default)
#   docker build -t daguerre:cuda --build-arg TORCH_VARIANT=cu128 .  # CUDA torch
#
# TORCH_VARIANT names a PyTorch wheel index (https://download.pytorch.org/whl/<variant>):
# `cpu` keeps the image small (no CUDA libraries); `cu128` (or another cuXYZ the pinned torch
# is published for) brings CUDA's runtime as wheels, so the base image stays plain Python and
# the host only needs the NVIDIA driver and container toolkit.
# Roles: `daguerre gateway` (the default CMD) or `daguerre worker --pool NAME`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with torch first, then the package (no source, no compilers
# in the final image).
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/daguerre
ENV PATH=/opt/daguerre/bin:$PATH
# torch first and exactly pinned, from the chosen index, so the resolver below never swaps it
# for another build (the default PyPI wheel would pull CUDA into the CPU image).
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && daguerre --help >/dev/null

# ---- runtime: the venv, a non-root user, writable data under /data.
FROM ${PYTHON_IMAGE} AS runtime
ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="daguerre" \
      org.opencontainers.image.description="OpenAI-compatible image generation on Temporal" \
      io.daguerre.torch-variant="${TORCH_VARIANT}"
RUN groupadd --system --gid 10001 daguerre \
 && useradd --system --uid 10001 --gid daguerre --home-dir /data --no-create-home daguerre \
 && mkdir -p /data /blobs && chown daguerre:daguerre /data /blobs
COPY --from=build /opt/daguerre /opt/daguerre
ENV PATH=/opt/daguerre/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGUERRE_DATA_DIR=/data \
    DAGUERRE_HOST=0.0.0.0 \
    DAGUERRE_PORT=8000
USER 10001:10001
WORKDIR /data
EXPOSE 8000
ENTRYPOINT ["daguerre"]
CMD ["gateway"]
