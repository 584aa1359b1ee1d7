# syntax=docker/dockerfile:1
# bansho's image: the CLI on Node.js 26, run as a non-root user, for one-shot runs (ensure-schema
# before the gateway starts, smoke in a deploy step) and as what a gateway image's HEALTHCHECK
# calls. No Docker engine runs where the tests do: test/dockerfile.test.ts performs these steps
# outside Docker (the same npm commands, the result run by a non-root user from a read-only copy).

# Node 26 is the Active LTS line (supported until April 2029); bansho also runs on 22 and 24.
# A full version, so that a rebuild gets the same node: the build-time code cache belongs to it.
ARG NODE_IMAGE=node:26.12.1-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /build
# The dependencies first: a change to the sources alone reuses this layer.
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; npm pack builds below.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# prepack builds dist/ and packs a package.json without `prepare`, as the registry would get it.
RUN npm pack --silent && mv bansho-*.tgz bansho.tgz

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
COPY --from=build /build/bansho.tgz /tmp/bansho.tgz
# The packed tarball and its production dependencies only; npm's cache stays out of the layer.
RUN --mount=type=cache,target=/root/.npm npm install --global --omit=dev --no-audit --no-fund /tmp/bansho.tgz \
  && rm /tmp/bansho.tgz
# As root, before USER: V8 code caches for this image's node, written into the package, which
# is read-only at run time (a read-only root filesystem, another user): bansho starts fast there.
RUN bansho warm-cache
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1000:1000
# No HEALTHCHECK: bansho runs once and exits. An image that runs a long-lived process with
# bansho beside it (the gateway) declares HEALTHCHECK CMD ["bansho", "smoke", "--quiet", "--timeout", "3s"]
# with --timeout=5s (see the README's Docker section).
ENTRYPOINT ["bansho"]
CMD ["smoke"]
