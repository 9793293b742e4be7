#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and run the images:
# a Docker engine with BuildKit (docker.io from trixie), buildx with modern bake
# (docker-buildx from forky), the compose plugin (docker-compose from trixie), debootstrap for
# the local base image, and Debian's docker-registry for the publish tests. Idempotent; starts dockerd if it is not up.
set -euo pipefail

need_install=()
command -v dockerd >/dev/null 2>&1 || need_install+=(docker.io)
[ -x /usr/libexec/docker/cli-plugins/docker-buildx ] || need_install+=(docker-buildx)
[ -x /usr/libexec/docker/cli-plugins/docker-compose ] || need_install+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need_install+=(debootstrap)
command -v docker-registry >/dev/null 2>&1 || need_install+=(docker-registry)

if [ ${#need_install[@]} -gt 0 ]; then
  cat >/etc/apt/sources.list.d/docker-newer.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/docker-newer <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=forky
Pin-Priority: 50

Package: docker.io
Pin: release n=trixie
Pin-Priority: 990

Package: docker-buildx
Pin: release n=forky
Pin-Priority: 990

Package: docker-compose
Pin: release n=trixie
Pin-Priority: 990
PIN
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${need_install[@]}" iptables ca-certificates
fi

if ! docker info >/dev/null 2>&1; then
  # No systemd here. --ip keeps published ports on loopback.
  setsid dockerd --ip 127.0.0.1 >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; tail -n 30 /var/log/dockerd.log >&2; exit 1; }
fi
docker version --format 'docker engine {{.Server.Version}}'
docker buildx version
