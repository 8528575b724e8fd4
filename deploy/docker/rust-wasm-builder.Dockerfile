# isotope/rust-wasm-builder: the builder image of Rust environments.
#
#   docker build -f deploy/docker/rust-wasm-builder.Dockerfile -t isotope/rust-wasm-builder .
#
# It runs `isotope builder /packages` (Fission's build API on :8001) next
# to a fetcher sidecar, and its default build command is
# `isotope build rust-wasm`, which compiles SRC_PKG (a .rs file, or a
# crate with Cargo.toml) into DEPLOY_PKG/main.wasm, a WAGI module, with
# Debian's rustc and its standard library for wasm32-wasi
# (libstd-rust-dev-wasm32; rustc links with lld). Builds are offline:
# a crate's dependencies must be vendored in its vendor/ directory.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/isotope ./cmd/isotope

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      rustc cargo libstd-rust-dev-wasm32 lld \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/isotope /usr/local/bin/isotope
COPY examples/hello-rust /tmp/warm/hello-rust
# Check the toolchain: build the example crate once, then drop it.
RUN mkdir -p /packages \
 && isotope build rust-wasm /tmp/warm/hello-rust /tmp/warm/out \
 && rm -rf /tmp/warm \
 && useradd --uid 10001 --home-dir /home/isotope --create-home isotope \
 && chown -R 10001 /packages
USER 10001
EXPOSE 8001
ENTRYPOINT ["isotope", "builder"]
CMD ["/packages"]
