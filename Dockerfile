# mlflow-otel-proxy container image. Build: docker build -t mlflow-otel-proxy .
# Installs what .ci/run installs for the build (zlib for gzip); the runtime needs only libz and CA certificates.
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product mlflow-otel-proxy \
    && cp "$(swift build -c release --show-bin-path)/mlflow-otel-proxy" /mlflow-otel-proxy

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends zlib1g ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/mlflow-otel-proxy --create-home proxy
COPY --from=build /mlflow-otel-proxy /usr/local/bin/mlflow-otel-proxy
USER proxy
WORKDIR /var/lib/mlflow-otel-proxy
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/mlflow-otel-proxy"]
CMD ["serve", "--listen", "0.0.0.0:5000"]
