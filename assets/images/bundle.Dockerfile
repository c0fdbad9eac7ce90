# The bundle: one container per bottle running every sidecar daemon under bottle-sidecar init.
# iproute2 is for launch's short-lived helper that removes the agent's default route.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git openssh-client ca-certificates iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY bottle-sidecar /usr/local/bin/bottle-sidecar
LABEL bottle.image="bundle"
HEALTHCHECK --interval=5s --timeout=3s --start-period=2s --retries=2 \
  CMD ["/usr/local/bin/bottle-sidecar", "health"]
ENTRYPOINT ["/usr/local/bin/bottle-sidecar", "init"]
