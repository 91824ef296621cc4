# syntax=docker/dockerfile:1

# Recap: one static-ish binary (`recap`) serving the API.
#
#   docker build -t recap .
#   docker run -p 8000:8000 -v recap-data:/data recap
#
# Without further settings the container runs in development mode on SQLite at /data/recap.db and
# generates a signing key in /data/recap.secret. For production set ENVIRONMENT=production and
# SECRET_KEY (32+ characters); see docs/CONFIGURATION.md and docker-compose.yml.

ARG RUST_VERSION=1

# ---------------------------------------------------------------------------------------------
# Manifests: every workspace member's Cargo.toml and nothing else. Its output only changes when a
# manifest changes, so the dependency layer below stays cached across source edits, and new
# workspace members are picked up without editing this file.
# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS manifests
WORKDIR /app
COPY crates crates
RUN find crates -type f ! -name Cargo.toml -delete \
 && find crates -depth -type d -empty -delete

# ---------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /app

# 1. Dependencies only: build with placeholder sources (an empty lib.rs and main.rs in every
#    member, enough for cargo to load the workspace) so this layer is reused for as long as
#    Cargo.toml / Cargo.lock / the members' manifests do not change.
COPY Cargo.toml Cargo.lock ./
COPY --from=manifests /app/crates crates
RUN for dir in crates/*/; do \
        mkdir -p "${dir}src" && echo 'fn main() {}' > "${dir}src/main.rs" && : > "${dir}src/lib.rs"; \
    done \
 && cargo build --release --locked -p recap \
 && rm -rf crates/*/src

# 2. The real sources (migrations are embedded into the binary at compile time).
COPY crates crates
# COPY keeps the files' original timestamps, which can be older than the placeholder build
# above; touch the crate roots so cargo rebuilds the workspace crates.
RUN find crates -path '*/src/*' \( -name main.rs -o -name lib.rs \) -exec touch {} + \
 && cargo build --release --locked -p recap \
 && ./target/release/recap --version

# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# git: pull sync of `pull` repositories runs it (see docs/CONFIGURATION.md, "Pull sync").
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 recap \
 && useradd --system --uid 10001 --gid recap --home-dir /data --no-create-home --shell /usr/sbin/nologin recap \
 && mkdir -p /data \
 && chown recap:recap /data

COPY --from=builder /app/target/release/recap /usr/local/bin/recap

# The working directory holds the SQLite database and, outside production, the generated
# `recap.secret`. The server also reads a `.env` from here (or a parent directory) if one exists.
WORKDIR /data
VOLUME ["/data"]

ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:///data/recap.db

USER recap
EXPOSE 8000

# No HEALTHCHECK: the slim image has no curl/wget and `recap` has no probe subcommand. Probe
# from the orchestrator instead: GET /api/v1/health/live (liveness) and GET /api/v1/ready
# (readiness: 503 when the database or Redis does not answer).

# `recap serve` stops gracefully on SIGTERM (the default stop signal).
ENTRYPOINT ["recap"]
CMD ["serve"]
