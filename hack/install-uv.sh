#!/usr/bin/env bash
# Makes the uv pinned in versions.env the one on PATH for the Makefile: if `uv` on PATH is
# another version or missing, installs UV_VERSION into DIR/bin (the Makefile puts DIR/bin first
# on PATH). pip's --target keeps it out of the system's Python (and out of the way of Debian's
# "externally managed" guard); Debian's python3-pip is apt-installed when pip is missing.
#
#   hack/install-uv.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
dir=${1:?usage: hack/install-uv.sh DIR}

if command -v uv >/dev/null && [ "$(uv --version | awk '{print $2}')" = "$UV_VERSION" ]; then
  exit 0
fi
echo "[setup] installing uv $UV_VERSION into $dir (pinned in hack/versions.env)" >&2
if ! python3 -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  else
    echo "[setup] python3 has no pip: install python3-pip (or uv $UV_VERSION yourself)" >&2
    exit 1
  fi
fi
rm -rf "$dir.tmp"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target "$dir.tmp" "uv==$UV_VERSION"
rm -rf "$dir" && mv "$dir.tmp" "$dir"
"$dir/bin/uv" --version >&2
