#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed, for the mock SIEM's browser test
# (crates/conformance/tests/mock_siem_browser.rs). When it is missing and we are root with
# apt-get, installs Debian's `chromium` (and a font, so that screenshots show text). Idempotent.
#
# Prints the browser's path on stdout and exits 0; otherwise prints why on stderr and exits 1
# (the test then skips with that message).
set -euo pipefail

browser() {
  local b
  for b in "${EVO_SIEM_CHROMIUM:-}" chromium chromium-browser; do
    [ -n "$b" ] && command -v "$b" && return 0
  done
  return 1
}

if browser; then exit 0; fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium.sh: chromium is not installed, and installing it needs root and apt-get" \
    "(Debian: apt-get install chromium)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run (services.sh, a second test binary) instead of failing on its lock.
apt=(-q -o DPkg::Lock::Timeout=300)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! apt-get "${apt[@]}" update >"$log" 2>&1; then
  echo "chromium.sh: apt-get update failed:" >&2
  tail -n 5 "$log" >&2
  exit 1
fi
# Not `grep -q`: it would stop reading early, and pipefail would take apt-cache's SIGPIPE for a failure.
if ! apt-cache policy chromium 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
  echo "chromium.sh: no chromium package in this machine's apt sources" >&2
  exit 1
fi
if ! apt-get "${apt[@]}" install -y --no-install-recommends chromium fonts-dejavu-core \
  >"$log" 2>&1; then
  echo "chromium.sh: apt-get install chromium failed:" >&2
  tail -n 5 "$log" >&2
  exit 1
fi

if browser; then exit 0; fi
echo "chromium.sh: chromium was installed but is not on PATH" >&2
exit 1
