# The agent: Claude Code on Debian, run as the unprivileged user `node`. bottle-sidecar is
# copied into each agent container at launch, so it is not part of this image.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git curl ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --shell /bin/bash node
RUN npm install -g @anthropic-ai/claude-code && npm cache clean --force
LABEL bottle.image="agent"
USER node
WORKDIR /home/node
