# syntax=docker/dockerfile:1

# Both stages install with --ignore-scripts: package.json's lifecycle scripts (`prepare` builds the
# project) must not run before the sources are in the image, nor in a stage without TypeScript.

# Node 24, the middle of the supported lines (src/node-support.ts, checked by a test), at 24.21.0:
# a release whose bookworm-slim image is pinned by digest in published Dockerfiles (a newer patch
# release of the line is fine; raise both stages together).
# Build: compile the TypeScript sources with the dev dependencies.
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY otel ./otel
RUN npm run build

# Run: production dependencies and the compiled code only, as an unprivileged user.
FROM node:24.21.0-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    GATEWAY_DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/src/console/assets ./src/console/assets
# The usage ledger (SQLite) lives here; mount a volume to keep it across containers.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The gateway handles SIGTERM itself: it drains in-flight requests, flushes telemetry and exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
