# isotope/fetcher: the fetcher sidecar of builder and function pods
# (Fission's fetcher API on :8000).
#
#   docker build -f deploy/docker/fetcher.Dockerfile -t isotope/fetcher .
#
# Pods run it as `isotope fetcher [-secret-dir /secrets] [-cfgmap-dir
# /configs] [-specialize-on-startup -specialize-request JSON] /userfunc`
# (/packages in builder pods), with ISOTOPE_URL pointing at the API.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/isotope ./cmd/isotope

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/isotope /isotope
EXPOSE 8000
ENTRYPOINT ["/isotope", "fetcher"]
CMD ["/userfunc"]
