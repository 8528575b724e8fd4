# isotope/fetcher: the fetcher sidecar of builder and function pods
# (Fission's fetcher API on :8000). Pods run it as `isotope fetcher
# [-secret-dir /secrets] [-cfgmap-dir /configs] [-specialize-on-startup
# -specialize-request JSON] /userfunc` (/packages in builder pods).
#
#   docker build -f deploy/docker/fetcher.Dockerfile -t isotope/fetcher:0.1.0 .
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
RUN go run ./hack/images rootfs -image fetcher -out /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="isotope/fetcher" \
      org.opencontainers.image.description="Isotope's fetcher, the sidecar of builder and function pods (Fission's fetcher API on port 8000)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.url="https://isotope.dev" \
      org.opencontainers.image.vendor="Isotope"
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/isotope
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/isotope", "fetcher"]
CMD ["/userfunc"]
