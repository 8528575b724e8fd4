# isotope/go-wasm-builder: the builder image of the go-wasm environment.
#
#   docker build -f deploy/docker/go-wasm-builder.Dockerfile -t isotope/go-wasm-builder .
#
# It runs `isotope builder /packages` (Fission's build API on :8001) next
# to a fetcher sidecar, and its default build command is
# `isotope build go-wasm`, which compiles SRC_PKG into DEPLOY_PKG/main.wasm
# with the Go toolchain of this image. GOCACHE and GOMODCACHE live under
# ISOTOPE_GO_CACHE (/cache): mount a volume there to keep rebuilds fast
# across pod restarts. The standard library is precompiled for wasip1 at
# image build time, so even the first build takes seconds.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/isotope ./cmd/isotope

FROM golang:${GO_VERSION}-bookworm
COPY --from=build /out/isotope /usr/local/bin/isotope
ENV ISOTOPE_GO_CACHE=/cache \
    GOTOOLCHAIN=local
# Warm the cache: build a hello function once (compiles the wasip1
# standard library and the SDK), then drop the output.
RUN mkdir -p /tmp/warm /packages /cache \
 && printf 'package main\n\nimport "net/http"\n\nfunc Handler(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }\n' > /tmp/warm/hello.go \
 && SRC_PKG=/tmp/warm/hello.go DEPLOY_PKG=/tmp/warm/out isotope build go-wasm \
 && rm -rf /tmp/warm \
 && useradd --uid 10001 --home-dir /home/isotope --create-home isotope \
 && chown -R 10001 /packages /cache
USER 10001
VOLUME ["/cache"]
EXPOSE 8001
ENTRYPOINT ["isotope", "builder"]
CMD ["/packages"]
