# syntax=docker/dockerfile:1
# The Kaiwo webhook image: one static binary (`webhook serve`, `webhook mutate`)
# on distroless, running as the nonroot user.
#   docker build -t ghcr.io/silogen/kaiwo-webhook:dev .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...

# The builder runs on the build host's platform and cross-compiles (no emulation).
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download

# Only what the binary is built from (bench/, test/ and hack/ are modules of their own; charts
# and manifests are not part of it), so other changes keep the build cached.
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
COPY pkg/ pkg/

RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /webhook ./cmd/webhook

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /webhook /webhook
USER 65532:65532
ENTRYPOINT ["/webhook"]
CMD ["serve"]
