# isotope/wasm-env: the WebAssembly environment, `isotope wasm-env`, a
# Fission environment runtime (port 8888) for WebAssembly functions.
#
#   docker build -f deploy/docker/wasm-env.Dockerfile -t isotope/wasm-env:0.1.0 .
#
# The same image as `make images` builds without Docker (internal/images):
# the build stage writes the image's files with `hack/images rootfs` (the
# static binary, the CA bundle, /etc/passwd, the user's directories)
# and the final stage copies them onto scratch. USER, ENV, EXPOSE,
# ENTRYPOINT and CMD below are that package's table; a test compares them.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go run ./hack/images rootfs -image wasm-env -out /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="isotope/wasm-env" \
      org.opencontainers.image.description="Isotope's WebAssembly environment: a Fission runtime (port 8888) that runs WebAssembly functions on wazero" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.url="https://isotope.dev" \
      org.opencontainers.image.vendor="Isotope"
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/isotope
EXPOSE 8888
ENTRYPOINT ["/usr/local/bin/isotope", "wasm-env"]
CMD ["--addr", ":8888", "--userfunc-dir", "/userfunc"]
