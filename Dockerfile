# mlflow-otel-proxy container image.
#   docker build -t mlflow-otel-proxy .
#   docker run -p 5000:5000 -p 9464:9464 -e MLFLOW_TRACKING_URI=http://mlflow:5000 mlflow-otel-proxy
# The build stage installs what .ci/run installs for the build (zlib for gzip, SQLite, jemalloc: the allocator) and
# builds the release binary with Tests/scripts/build-release.sh (the Swift standard library linked statically, function
# sections); CI builds the same binary with the same script and runs this image's entry command on the host.
# Package.swift links release builds with the toolchain's lld (packed relative relocations, no exported symbols, the
# functions start-up runs placed together: a smaller resident binary, still position-independent) and jemalloc.

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends zlib1g-dev libsqlite3-dev libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN cp "$(Tests/scripts/build-release.sh)" /usr/local/bin/mlflow-otel-proxy

FROM debian:bookworm-slim
# zlib for gzip, SQLite for the intake journal, jemalloc (the allocator), CA certificates for https destinations (the
# health check is the binary's own `healthcheck` command, so the image needs no HTTP client).
RUN apt-get update \
    && apt-get install -y --no-install-recommends zlib1g libsqlite3-0 libjemalloc2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/mlflow-otel-proxy --create-home proxy \
    && mkdir -p /var/lib/mlflow-otel-proxy/spool /var/lib/mlflow-otel-proxy/attachments \
    && chown -R proxy /var/lib/mlflow-otel-proxy
COPY --from=build /usr/local/bin/mlflow-otel-proxy /usr/local/bin/mlflow-otel-proxy
USER 10001
WORKDIR /var/lib/mlflow-otel-proxy
VOLUME ["/var/lib/mlflow-otel-proxy/spool"]
# The spool is on in the image: batches for a destination that is down survive a crash or restart (the volume).
ENV MLFLOW_OTEL_PROXY_LISTEN=0.0.0.0:5000 \
    MLFLOW_OTEL_PROXY_ADMIN_LISTEN=0.0.0.0:9464 \
    MLFLOW_OTEL_PROXY_SPOOL_DIR=/var/lib/mlflow-otel-proxy/spool
# 5000: the MLflow tracking URI applications use; 9464: /healthz, /readyz, /metrics, /status.
EXPOSE 5000 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/mlflow-otel-proxy", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mlflow-otel-proxy"]
CMD ["serve"]
