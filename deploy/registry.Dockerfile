# nestswap registry image.
# Build context: the unpacked package (what `npm pack` makes):
#   npm pack && tar xzf nestswap-*.tgz            # -> package/
#   docker build -f package/deploy/registry.Dockerfile -t nestswap-registry package/
#   docker buildx build --platform linux/arm64 -f package/deploy/registry.Dockerfile -t nestswap-registry:arm64 package/
# Run: docker run -d -p 8700:8700 -v nestswap-registry:/var/lib/nestswap-registry \
#        -e NESTSWAP_ADMIN_TOKEN=... -e NESTSWAP_ENROLL_TOKEN=... nestswap-registry
#      (without the tokens, new ones are generated on the first start and printed once: docker logs)

FROM node:20-bookworm AS build
ENV ONNXRUNTIME_NODE_INSTALL=skip npm_config_onnxruntime_node_install=skip
WORKDIR /opt/nestswap
COPY package.json LICENSE README.md ./
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
ENV NODE_ENV=production NESTSWAP_REGISTRY_DATA=/var/lib/nestswap-registry
RUN groupadd --system --gid 10001 nestswap \
 && useradd --system --uid 10001 --gid nestswap --home-dir /var/lib/nestswap-registry --shell /usr/sbin/nologin nestswap \
 && mkdir -p /var/lib/nestswap-registry && chown nestswap:nestswap /var/lib/nestswap-registry
COPY --from=build /opt/nestswap /opt/nestswap
VOLUME ["/var/lib/nestswap-registry"]
USER nestswap:nestswap
WORKDIR /var/lib/nestswap-registry
EXPOSE 8700
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8700/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/opt/nestswap/bin/nestswap.js", "registry", "--host", "0.0.0.0", "--port", "8700"]
