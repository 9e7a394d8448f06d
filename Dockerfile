# The one ambient image: every component (`ambient controlplane`, `ambient ztunnel`,
# `ambient cni`) runs this binary, and the manifests name the subcommand.
#
#   docker build -t ghcr.io/ambient-mesh/ambient:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) .
#
# Build stage: the release binary. The git commit comes in as an argument (.git is not sent to
# the builder).
FROM rust:1.95-bookworm AS build
ARG GIT_COMMIT=unknown
ENV AMBIENT_GIT_COMMIT=${GIT_COMMIT}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ambient \
    && install -D -m 0755 target/release/ambient /out/ambient

# Runtime stage: Debian slim, plus iptables, which the CNI agent runs inside pods' network
# namespaces (iptables-restore). No shell tools beyond the base, no package caches.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ambient /usr/local/bin/ambient
# Non-root by default: the control plane runs as this user. ztunnel and the CNI agent need
# network capabilities that Kubernetes grants only to root; their manifests set runAsUser: 0
# and add exactly those capabilities (docs/install.md).
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/ambient"]
CMD ["--help"]
