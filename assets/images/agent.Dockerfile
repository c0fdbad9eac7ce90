# The agent: Claude Code's native executable on Debian, run as the unprivileged user `node`.
# The package is fetched and verified on the host (`bottle-tui image build --agent`) and
# arrives in the build context as claude-code.archive, so this build needs no network beyond
# Debian's mirror. bottle-sidecar is copied into each agent container at launch, not built in.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git curl ca-certificates less procps ripgrep openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --shell /bin/bash node
ADD claude-code.archive /opt/claude-code/
RUN ln -s /opt/claude-code/package/claude /usr/local/bin/claude \
 && claude --version
LABEL bottle.image="agent"
USER node
WORKDIR /home/node
