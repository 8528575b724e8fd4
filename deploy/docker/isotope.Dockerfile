# isotope/isotope: the control-plane image. Every role of the Kubernetes
# mode is this one binary: the Helm chart (deploy/helm/isotope) runs
# `isotope storagesvc`, `isotope router`, `isotope executor`,
# `isotope buildermgr` and `isotope timer`, each in its own Deployment,
# with in-cluster credentials from its ServiceAccount.
#
#   docker build -f deploy/docker/isotope.Dockerfile -t isotope/isotope .
#
# The binary is static (CGO_ENABLED=0; bbolt, wazero and client-go are
# pure Go), so the image is distroless/static: CA certificates, tzdata,
# /etc/passwd with a nonroot user, and nothing else (no shell).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/isotope ./cmd/isotope

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/isotope /isotope
USER 65532:65532
ENTRYPOINT ["/isotope"]
CMD ["--help"]
