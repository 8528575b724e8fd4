# The WebAssembly environment image: `isotope wasm-env`, a Fission
# environment runtime (port 8888) for WebAssembly functions.
#
#   docker build -f deploy/docker/wasm-env.Dockerfile -t isotope/wasm-env .
#
# The binary is static (wazero is pure Go, no cgo), so the image is
# FROM scratch: no shell, no libc, nothing but the binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/isotope ./cmd/isotope

FROM scratch
COPY --from=build /out/isotope /isotope
USER 65534:65534
EXPOSE 8888
ENTRYPOINT ["/isotope", "wasm-env"]
CMD ["--addr", ":8888", "--userfunc-dir", "/userfunc"]
