# Build: the release binary, with migrations embedded.
FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN cargo build --release --locked && cp target/release/varsel /usr/local/bin/varsel

# Run: a small image with just the binary.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/varsel varsel
COPY --from=build /usr/local/bin/varsel /usr/local/bin/varsel
USER varsel
ENV VARSEL_LISTEN=0.0.0.0:8080 VARSEL_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["varsel"]
CMD ["serve"]
