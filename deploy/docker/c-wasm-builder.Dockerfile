# isotope/c-wasm-builder: the builder image of C (and C++) environments.
#
#   docker build -f deploy/docker/c-wasm-builder.Dockerfile -t isotope/c-wasm-builder .
#
# It runs `isotope builder /packages` (Fission's build API on :8001) next
# to a fetcher sidecar, and its default build command is
# `isotope build c-wasm`, which compiles SRC_PKG (a .c file, or a
# directory with C/C++ sources, a build.sh or a Makefile) into
# DEPLOY_PKG/main.wasm, a WAGI module, with Debian's clang, wasm-ld and
# wasi-libc. C++ gets libc++ for wasm32; make runs Makefiles.
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
      clang lld wasi-libc libclang-rt-14-dev-wasm32 \
      libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 make \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/isotope /usr/local/bin/isotope
# Check the toolchain: build a hello once (C and C++), then drop it.
RUN mkdir -p /tmp/warm/c /tmp/warm/cc /packages \
 && printf '#include <stdio.h>\nint main(void) { printf("Content-Type: text/plain\\n\\nhi\\n"); return 0; }\n' > /tmp/warm/c/hello.c \
 && printf '#include <iostream>\nint main() { std::cout << "Content-Type: text/plain\\n\\nhi\\n"; }\n' > /tmp/warm/cc/hello.cpp \
 && isotope build c-wasm /tmp/warm/c/hello.c /tmp/warm/c-out \
 && isotope build c-wasm /tmp/warm/cc/hello.cpp /tmp/warm/cc-out \
 && rm -rf /tmp/warm \
 && useradd --uid 10001 --home-dir /home/isotope --create-home isotope \
 && chown -R 10001 /packages
USER 10001
EXPOSE 8001
ENTRYPOINT ["isotope", "builder"]
CMD ["/packages"]
