# The project's image: producer, consumer and dead-letters on a small Debian 13 base, run as a non-root user.
# `docker-compose build` uses this file (stage `runtime`, the last one) when it can reach a registry
# and crates.io. scripts/compose-test.sh, on machines without network access, uses
# Dockerfile.host-binaries instead: the same runtime stage, with binaries built on the host.
ARG RUST_IMAGE=rust:1-slim-trixie
ARG BASE_IMAGE=debian:trixie-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependency layer: only manifests and a stub of every crate, so source edits keep it cached.
COPY Cargo.toml Cargo.lock ./
COPY rabbit-gather/Cargo.toml rabbit-gather/
COPY producer/Cargo.toml producer/
COPY consumer/Cargo.toml consumer/
COPY bench/Cargo.toml bench/
COPY tests/Cargo.toml tests/
RUN for c in rabbit-gather producer consumer bench tests; do mkdir -p $c/src && echo 'fn main() {}' > $c/src/main.rs && touch $c/src/lib.rs; done \
 && (cargo build --release --locked --bins || true) \
 && rm -rf rabbit-gather/src producer/src consumer/src bench/src tests/src
COPY . .
RUN touch */src/*.rs && cargo build --release --locked --bins \
 && mkdir /out && cp target/release/producer target/release/consumer target/release/dead-letters /out/

FROM ${BASE_IMAGE} AS runtime
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin greetings
COPY --from=build /out/producer /out/consumer /out/dead-letters /usr/local/bin/
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/consumer"]
CMD ["--help"]
