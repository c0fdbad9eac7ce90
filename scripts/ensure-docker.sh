#!/usr/bin/env bash
# Makes sure a Docker engine answers: if none does, installs Debian's docker.io (as root) and
# starts dockerd in the background, then waits until `docker info` succeeds.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-docker: no Docker engine answers and this is not root; start dockerd yourself" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y docker.io >/tmp/ensure-docker-apt.log 2>&1 || {
    apt-get update >>/tmp/ensure-docker-apt.log 2>&1
    apt-get install -y docker.io >>/tmp/ensure-docker-apt.log 2>&1
  }
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd (log: /var/log/dockerd.log)"
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: engine is up ($(docker version --format '{{.Server.Version}}, API {{.Server.APIVersion}}'))"
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; last lines of /var/log/dockerd.log:" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
