# isotope/rust-wasm-builder: the builder image of Rust environments.
# It runs `isotope builder /packages` (Fission's build API on :8001) next
# to a fetcher sidecar; its default build command, `isotope build
# rust-wasm`, compiles SRC_PKG (a .rs file, or a crate with Cargo.toml)
# into DEPLOY_PKG/main.wasm, a reactor (a handler crate) or a WAGI module
# (a program), with Debian's rustc and its standard library for
# wasm32-wasi (libstd-rust-dev-wasm32; rustc links with lld). Builds are offline: a crate's dependencies must be vendored
# in its vendor/ directory.
#
#   docker build -f deploy/docker/rust-wasm-builder.Dockerfile -t isotope/rust-wasm-builder:0.1.0 .
#
# The same image as `make images` builds without Docker (internal/images):
# the build stage installs the toolchain's Debian packages and writes the
# image's files with `hack/images rootfs` (the static binary, the CA
# bundle, /etc/passwd, the user's directories, and the packages' files
# with their Depends closure, laid out merged-/usr) and the final stage
# copies them onto scratch. USER, ENV, EXPOSE, ENTRYPOINT and CMD below
# are that package's table; a test compares them.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      rustc cargo libstd-rust-dev-wasm32 lld \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go run ./hack/images rootfs -image rust-wasm-builder -out /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="isotope/rust-wasm-builder" \
      org.opencontainers.image.description="Isotope's Rust-to-WebAssembly builder (Fission's builder API on port 8001): `isotope build rust-wasm` with Debian's rustc, cargo and the wasm32 standard library inside" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.url="https://isotope.dev" \
      org.opencontainers.image.vendor="Isotope"
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/isotope
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/isotope", "builder"]
CMD ["/packages"]
