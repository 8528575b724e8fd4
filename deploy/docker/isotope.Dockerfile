# isotope/isotope: the control-plane image. Every role of the Kubernetes
# mode is this one binary: the Helm chart (deploy/helm/isotope) runs
# `isotope storagesvc`, `isotope router`, `isotope executor`,
# `isotope buildermgr` and `isotope timer serve`, each in its own
# Deployment, with in-cluster credentials from its ServiceAccount.
#
#   docker build -f deploy/docker/isotope.Dockerfile -t isotope/isotope:0.1.0 .
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
RUN go run ./hack/images rootfs -image isotope -out /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="isotope/isotope" \
      org.opencontainers.image.description="Isotope's control plane: every role (storagesvc, router, executor, buildermgr, timer) is `isotope <role>`" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.url="https://isotope.dev" \
      org.opencontainers.image.vendor="Isotope"
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/isotope
ENTRYPOINT ["/usr/local/bin/isotope"]
CMD ["--help"]
