# Parley server image. The build mirrors `make install` minus the dev extras: a virtualenv
# with the `parley` distribution installed from this checkout. The generated stubs in
# client/parley/v1 are committed, so no protoc step runs here.
#   docker build -t parley .
#   docker run --rm -p 50051:50051 -v parley-data:/app/data parley

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --quiet --upgrade pip
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
# Optional dependency groups of pyproject.toml, comma-separated (for example "postgres").
ARG PARLEY_EXTRAS=""
RUN /opt/venv/bin/python -m pip install --quiet ".${PARLEY_EXTRAS:+[$PARLEY_EXTRAS]}"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin parley \
 && mkdir -p /app/data \
 && chown parley:parley /app/data
COPY --from=builder /opt/venv /opt/venv
# Plaintext inside the container network: TLS ends at the platform's proxy or ingress.
# To terminate TLS here, set PARLEY_TLS_CERT_FILE and PARLEY_TLS_KEY_FILE (mounted PEM
# files) and PARLEY_ALLOW_INSECURE=false, and run with --no-healthcheck or your own probe.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PARLEY_ADDRESS=0.0.0.0:50051 \
    PARLEY_ALLOW_INSECURE=true \
    PARLEY_STORE_URL=sqlite:////app/data/parley.db
WORKDIR /app
USER parley
VOLUME ["/app/data"]
EXPOSE 50051
# The standard gRPC health service, on the port PARLEY_ADDRESS names.
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ['PARLEY_ADDRESS'].rpartition(':')[2]; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(service='parley.v1.DialogueService'), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
CMD ["parley-server"]
