# isotope/go-wasm-builder: the builder image of the go-wasm environment.
# It runs `isotope builder /packages` (Fission's build API on :8001) next
# to a fetcher sidecar; its default build command, `isotope build
# go-wasm`, compiles SRC_PKG into DEPLOY_PKG/main.wasm with the Go
# toolchain in /usr/local/go (the build stage's GOROOT, pruned to what a
# wasip1 build runs). GOCACHE and GOMODCACHE live under ISOTOPE_GO_CACHE
# (/cache): mount a volume there to keep builds fast across pod restarts
# (the first build compiles the standard library for wasip1).
#
#   docker build -f deploy/docker/go-wasm-builder.Dockerfile -t isotope/go-wasm-builder:0.1.0 .
#
# The same image as `make images` builds without Docker (internal/images):
# the build stage writes the image's files with `hack/images rootfs` (the
# static binary, the CA bundle, /etc/passwd, the user's directories, the
# toolchain) and the final stage copies them onto scratch. USER, ENV, EXPOSE,
# ENTRYPOINT and CMD below are that package's table; a test compares them.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go run ./hack/images rootfs -image go-wasm-builder -out /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="isotope/go-wasm-builder" \
      org.opencontainers.image.description="Isotope's Go-to-WebAssembly builder (Fission's builder API on port 8001): `isotope build go-wasm` with the Go toolchain inside" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.url="https://isotope.dev" \
      org.opencontainers.image.vendor="Isotope"
USER 65532:65532
ENV PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/home/isotope \
    ISOTOPE_GO_CACHE=/cache \
    GOTOOLCHAIN=local
VOLUME ["/cache"]
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/isotope", "builder"]
CMD ["/packages"]
