# Multi-stage build: a static saker binary on a minimal base, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/saker ./cmd/saker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/saker /usr/local/bin/saker
COPY docs/examples/config.yaml /etc/saker/config.yaml
USER 65532:65532
EXPOSE 2801
ENTRYPOINT ["/usr/local/bin/saker"]
CMD ["-c", "/etc/saker/config.yaml"]
