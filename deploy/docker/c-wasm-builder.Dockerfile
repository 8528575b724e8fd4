# isotope/c-wasm-builder: the builder image of C (and C++) environments.
# It runs `isotope builder /packages` (Fission's build API on :8001) next
# to a fetcher sidecar; its default build command, `isotope build
# c-wasm`, compiles SRC_PKG (a .c file, or a directory with C/C++
# sources, a build.sh or a Makefile) into DEPLOY_PKG/main.wasm, a WAGI
# module, with Debian's clang, wasm-ld and wasi-libc; C++ gets libc++ for
# wasm32; make and sh run build scripts.
#
#   docker build -f deploy/docker/c-wasm-builder.Dockerfile -t isotope/c-wasm-builder:0.1.0 .
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
      clang lld wasi-libc libclang-rt-14-dev-wasm32 \
      libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go run ./hack/images rootfs -image c-wasm-builder -out /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="isotope/c-wasm-builder" \
      org.opencontainers.image.description="Isotope's C/C++-to-WebAssembly builder (Fission's builder API on port 8001): `isotope build c-wasm` with Debian's clang, wasm-ld and wasi-libc inside" \
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
