#!/usr/bin/env bash
# Stop what hack/dev-up.sh started: the hub and region clusters that kwokctl created in our own
# workdir ($WATTSCALE_CACHE/kwok), and their kubeconfigs. Other kwok clusters (~/.kwok) and any
# other process are left alone.
#
# Usage: hack/dev-down.sh [CLUSTER...]   default: the hub and every region (see hack/lib.sh)
# Idempotent: a cluster that does not exist is skipped.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

if (($#)); then clusters=("$@"); else read -r -a clusters <<<"$WATTSCALE_HUB $WATTSCALE_REGIONS"; fi
export KWOK_WORKDIR="$WATTSCALE_KWOK_WORKDIR"
lock_stack
KWOKCTL="$WATTSCALE_BIN_DIR/kwokctl"

for name in "${clusters[@]}"; do
    if [[ ! -d "$KWOK_WORKDIR/clusters/$name" ]]; then
        log "cluster $name: not there, nothing to do"
        rm -f "$WATTSCALE_CLUSTERS_DIR/$name.kubeconfig"
        continue
    fi
    # Remember the cluster's pids first: kwokctl deletes the pid files together with the dir.
    pids="$(cluster_pids "$name")"
    if [[ -x "$KWOKCTL" ]]; then
        # kwokctl stops each component by the pid file it wrote, then removes the cluster's dir.
        # --kubeconfig: a file of ours, so kwokctl never edits ~/.kube/config ("" is refused here).
        run_step "delete cluster $name" "$KWOKCTL" -v WARN --name "$name" delete cluster \
            --kubeconfig "$KWOK_WORKDIR/unused.kubeconfig" || true
    fi
    # Belt and braces: stop any of those processes still alive, if it is still ours (its command
    # line mentions this cluster's directory; guards against a reused pid).
    ours=()
    for pid in $pids; do
        if grep -qF "clusters/$name/" "/proc/$pid/cmdline" 2>/dev/null; then ours+=("$pid"); fi
    done
    if ((${#ours[@]})); then
        log "cluster $name: stopping leftover pids ${ours[*]}"
        kill "${ours[@]}" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            alive=0
            for pid in "${ours[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
            ((alive)) || break
            sleep 1
        done
        kill -9 "${ours[@]}" 2>/dev/null || true
    fi
    rm -rf "${KWOK_WORKDIR:?}/clusters/$name"
    rm -f "$WATTSCALE_CLUSTERS_DIR/$name.kubeconfig"
done
log "dev stack down (${clusters[*]})"
