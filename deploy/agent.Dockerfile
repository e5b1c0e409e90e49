# nestswap device agent image.
# Build context: the unpacked package (what `npm pack` makes), so the image holds exactly what users install:
#   npm pack && tar xzf nestswap-*.tgz            # -> package/
#   docker build -f package/deploy/agent.Dockerfile -t nestswap-agent package/
#   docker buildx build --platform linux/arm64 -f package/deploy/agent.Dockerfile -t nestswap-agent:arm64 package/
# onnxruntime-node ships linux x64 and arm64 CPU binaries; its CUDA download stays off (ONNXRUNTIME_NODE_INSTALL=skip).
# Run: docker run -d -p 127.0.0.1:8787:8787 -v nestswap-agent:/var/lib/nestswap nestswap-agent
#      fleet: docker run ... -e NESTSWAP_ENROLL_TOKEN=... -v ./root.json:/etc/nestswap/root.json:ro nestswap-agent \
#        --registry URL --supernet fmnist-ofa --trust-root /etc/nestswap/root.json --latency-ms 2

FROM node:20-bookworm AS build
ENV ONNXRUNTIME_NODE_INSTALL=skip npm_config_onnxruntime_node_install=skip
WORKDIR /opt/nestswap
COPY package.json LICENSE README.md ./
# dependencies first (a layer reused while only the code changes); better-sqlite3 compiles here if no prebuilt binary fits:
# no lifecycle scripts (the package's own `prepare` needs the dev tools; onnxruntime-node's would fetch CUDA files),
# then only the native builds the runtime needs
RUN npm install --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm rebuild better-sqlite3 msgpackr-extract \
 && npm cache clean --force
COPY bin/ bin/
COPY dist/ dist/
COPY models/fmnist-ofa/ models/fmnist-ofa/
COPY registry/openapi.yaml registry/openapi.yaml
RUN node bin/nestswap.js --version

FROM node:20-bookworm-slim
ENV NODE_ENV=production NESTSWAP_DATA=/var/lib/nestswap
RUN groupadd --system --gid 10001 nestswap \
 && useradd --system --uid 10001 --gid nestswap --home-dir /var/lib/nestswap --shell /usr/sbin/nologin nestswap \
 && mkdir -p /var/lib/nestswap && chown nestswap:nestswap /var/lib/nestswap
COPY --from=build /opt/nestswap /opt/nestswap
VOLUME ["/var/lib/nestswap"]
USER nestswap:nestswap
WORKDIR /var/lib/nestswap
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8787/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/opt/nestswap/bin/nestswap-agent", "--host", "0.0.0.0", "--port", "8787", "--data", "/var/lib/nestswap"]
CMD ["--supernet", "fmnist-ofa", "--latency-ms", "2"]
