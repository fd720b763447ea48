# syntax=docker/dockerfile:1
# Tessera's container image: the release binary on Debian bookworm-slim, with
# SoftHSM2 and OpenSC so a SoftHSM2 token volume can hold its pkcs11: keys
# (hsm-sim/softhsm-token.sh makes one; docker-compose.yml shows the shape).
#
#   docker build -t tessera .
#   docker run --rm -v tessera-data:/var/lib/tessera \
#     -v "$PWD/tessera.toml:/etc/tessera/tessera.toml:ro" -p 8443:8443 tessera

# --- build ---------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies alone first, so this layer is reused until a manifest or
# Cargo.lock changes: stub targets stand in for the sources. The workspace's
# other members (the agent and the types it shares, the fuzz crate) must be
# present for Cargo to read the workspace; the shared crates are small and
# come whole.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY fuzz/Cargo.toml ./fuzz/Cargo.toml
RUN mkdir -p src benches fuzz/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs fuzz/src/lib.rs \
    && echo 'fn main() {}' > benches/issuance.rs \
    && cargo build --release --locked -p tessera --bin tessera \
    && rm -rf src benches

COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
# touch: COPY keeps the sources' mtimes, which may be older than the stub build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p tessera --bin tessera \
    && cp target/release/tessera /usr/local/bin/tessera

# --- runtime -------------------------------------------------------------
FROM debian:bookworm-slim

# Unpinned on purpose: the bookworm-slim tag tracks Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates softhsm2 opensc \
    && rm -rf /var/lib/apt/lists/*

# /run/softhsm is where docker-compose.yml mounts the SoftHSM2 token volume;
# owned by tessera here so a new named volume starts out owned by it too.
RUN groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera \
        --shell /usr/sbin/nologin tessera \
    && mkdir -p /var/lib/tessera /etc/tessera /run/softhsm \
    && chown tessera:tessera /var/lib/tessera /run/softhsm \
    && chmod 0700 /var/lib/tessera /run/softhsm

COPY --from=build /usr/local/bin/tessera /usr/local/bin/tessera
COPY hsm-sim/softhsm-token.sh /usr/local/bin/softhsm-token.sh

USER 10001:10001
WORKDIR /var/lib/tessera
VOLUME ["/var/lib/tessera"]
# Public HTTPS (ACME, CA certificates), public HTTP (AIA, CRL, OCSP), admin HTTPS.
EXPOSE 8443 8080 9443
ENTRYPOINT ["tessera"]
CMD ["serve", "--config", "/etc/tessera/tessera.toml"]
