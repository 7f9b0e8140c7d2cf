#!/usr/bin/env bash
# Make sure a `prometheus` binary is on PATH, installing Debian's package if it is not.
# It does NOT start Prometheus: tests start their own, on 127.0.0.1, with their own config.
#
# Debian's postinst runs `invoke-rc.d prometheus start`, which would start a daemon listening on
# 0.0.0.0:9090. A policy-rc.d that exits 101 ("action forbidden") stops that; we install one only
# for the duration of the install and only if there is none already.
# Idempotent: does nothing when prometheus is already there.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

if command -v prometheus >/dev/null 2>&1; then
    log "prometheus already installed: $(command -v prometheus) ($(prometheus --version 2>&1 | head -1))"
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "prometheus is missing and installing it needs root (no sudo found)"
    SUDO=(sudo)
fi

POLICY=/usr/sbin/policy-rc.d
our_policy=0
if [[ ! -e "$POLICY" ]]; then
    log "installing a temporary $POLICY (exit 101) so the package does not start a daemon"
    printf '#!/bin/sh\n# temporary, from wattscale hack/ensure-prometheus.sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    our_policy=1
fi
cleanup() { if ((our_policy)); then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
run_step "apt-get update" "${SUDO[@]}" apt-get update -qq
run_step "apt-get install prometheus" "${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus

command -v prometheus >/dev/null 2>&1 || die "prometheus still not on PATH after installing the Debian package"
log "prometheus installed: $(prometheus --version 2>&1 | head -1) (not started)"
