#!/usr/bin/env bash
# The anchor for benches/launch.rs: the same bottle topology and provisioning as `bottle-tui up`,
# done with the raw docker CLI. Usage: launch_raw.sh up|kill SLUG STATE_DIR SIDECAR
set -euo pipefail
cmd=$1 S=$2 STATE=$3 SIDECAR=$4
L=(--label "bottle.slug=raw-$S" --label bottle.role=bench-raw)
if [ "$cmd" = kill ]; then
  docker rm -f "raw-$S-agent" "raw-$S-bundle" >/dev/null
  docker network rm "raw-$S-int" "raw-$S-ext" >/dev/null
  exit 0
fi
docker network create --internal -o com.docker.network.bridge.inhibit_ipv4=true "${L[@]}" "raw-$S-int" >/dev/null
docker network create "${L[@]}" "raw-$S-ext" >/dev/null
docker create --name "raw-$S-bundle" "${L[@]}" --network "raw-$S-int" --network-alias gateway \
  --cap-drop ALL --security-opt no-new-privileges:true --memory 512m --pids-limit 256 \
  -v "$STATE/gateway.json:/etc/bottle/gateway.json:ro" -v "$STATE/ca:/etc/bottle/ca:ro" \
  -e BOTTLE_DAEMONS=gateway -e BOTTLE_SLUG="$S" bottle-bundle:latest >/dev/null
docker network connect "raw-$S-ext" "raw-$S-bundle"
docker start "raw-$S-bundle" >/dev/null
IP=$(docker inspect -f "{{(index .NetworkSettings.Networks \"raw-$S-int\").IPAddress}}" "raw-$S-bundle")
docker create --name "raw-$S-agent" "${L[@]}" --network "raw-$S-int" --add-host "gateway:$IP" --dns 127.0.0.1 \
  --cap-drop ALL --security-opt no-new-privileges:true --memory 4g --pids-limit 512 --user node \
  -e HTTPS_PROXY=http://gateway:8888 -e HTTP_PROXY=http://gateway:8888 -e BOTTLE_DAEMONS= \
  --entrypoint /.bottle/bottle-sidecar bottle-test-agent:latest init >/dev/null
tmp=$(mktemp -d); mkdir "$tmp/.bottle"; cp "$SIDECAR" "$tmp/.bottle/bottle-sidecar"
docker cp "$tmp/.bottle" "raw-$S-agent:/" >/dev/null
docker start "raw-$S-agent" >/dev/null
docker run --rm --network "container:raw-$S-agent" --cap-add NET_ADMIN --memory 64m --pids-limit 16 \
  --entrypoint sh bottle-bundle:latest -c 'ip route del default; [ -z "$(ip route show default)" ]'
docker exec "raw-$S-agent" sh -c 'id -u; id -g; printf "%s\n" "$HOME"; stat -c %u "$HOME"' >/dev/null
cp "$STATE/ca/ca.pem" "$tmp/bottle-ca.crt"
docker cp "$tmp/bottle-ca.crt" "raw-$S-agent:/usr/local/share/ca-certificates/bottle-ca.crt" >/dev/null
line=$(sed -n 2p "$STATE/ca/ca.pem")
docker exec -u root "raw-$S-agent" sh -c 'set -e; chmod 1777 /tmp /var/tmp; cd /etc/ssl/certs; ln -sf "$2" bottle-ca.pem;
  ln -sf bottle-ca.pem "$(openssl x509 -hash -noout -in "$2").0";
  grep -qF "$1" ca-certificates.crt || printf "%s\n" "$(cat "$2")" >> ca-certificates.crt;
  grep -qF "$1" ca-certificates.crt' sh "$line" /usr/local/share/ca-certificates/bottle-ca.crt
echo ok > "$tmp/provisioned"
docker cp "$tmp/provisioned" "raw-$S-agent:/.bottle/provisioned" >/dev/null
rm -rf "$tmp"
