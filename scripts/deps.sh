#!/usr/bin/env bash
# Installs, with apt, the Debian packages oxios and its tests need, when they
# are missing. Needs root; without root it only reports what is missing.
set -euo pipefail

pkgs=(containerd runc crun buildah tini dumb-init systemd-container mmdebstrap
      iproute2 util-linux docker-registry curl ca-certificates make git systemd tar
      containernetworking-plugins iptables)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' own services (containerd, docker-registry)
# from starting: oxios starts the containerd it needs on a private socket.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
