#!/usr/bin/env bash
# Installs the Debian packages h2ws builds and tests with, only those missing.
# Idempotent: a machine that has them all runs no apt-get at all.
set -euo pipefail

packages=(
  build-essential pkg-config libnghttp2-dev libssl-dev   # the extension
  openssl                                                 # demo certificate
  clang libclang-rt-14-dev                                # libFuzzer, sanitizers
  nodejs nghttp2-client nghttp2-proxy haproxy             # interop peers
  chromium                                                # headless browser interop
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "sysdeps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
