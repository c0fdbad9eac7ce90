# The test agent: the agent image minus Node and Claude Code, plus the probes the integration
# tests run from inside a bottle (dig, ip), and python3 for the fake HTTPS services the tests
# stand up beside a bottle (tests/fakes/).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git curl ca-certificates bind9-dnsutils iproute2 procps python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --shell /bin/bash node
LABEL bottle.image="test-agent"
USER node
WORKDIR /home/node
