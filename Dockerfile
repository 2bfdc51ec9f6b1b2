# Builds both binaries; the image runs one of them (see docker-compose.yml).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 greetings
COPY --from=build /src/target/release/producer /src/target/release/consumer /usr/local/bin/
USER greetings
ENTRYPOINT ["/usr/local/bin/consumer"]
