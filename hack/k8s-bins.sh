#!/usr/bin/env bash
# Build (or find) every binary the local multi-region Kubernetes stack needs:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kwok, kwokctl                                                     (sigs.k8s.io/kwok)
#   helm                                                              (helm.sh/helm/v3)
# into a version-keyed directory outside the repo (see hack/lib.sh), from the Go module proxy.
# No container engine and no release-page downloads are needed.
#
# Usage:
#   hack/k8s-bins.sh              build what is missing; the LAST line of stdout is the bin dir
#   hack/k8s-bins.sh --print-dir  only print the bin dir (builds nothing)
#   hack/k8s-bins.sh --check      exit 1 unless every binary is there at the right version
#
# A binary is skipped when $BIN_DIR/<name> already reports the pinned version. Before building,
# a binary of the right version is looked for in $KUBEBUILDER_ASSETS, in kwokctl's own variables
# ($KWOK_KUBE_APISERVER_BINARY, $KWOK_ETCD_BINARY, ...), and on $PATH; if found it is symlinked.
#
# Knobs: WATTSCALE_CACHE (default ~/.cache/wattscale), WATTSCALE_GO_P (go build -p, default: go's
# default = number of cores; set 1 if the build is OOM-killed), GO (default: go on PATH, else
# /usr/local/go/bin/go).
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

case "${1:-}" in
--print-dir)
    echo "$WATTSCALE_BIN_DIR"
    exit 0
    ;;
--check)
    require_bins
    echo "$WATTSCALE_BIN_DIR"
    exit 0
    ;;
"") ;;
*) die "usage: $0 [--print-dir|--check]" ;;
esac

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || die "no Go toolchain found (looked for 'go' on PATH and /usr/local/go/bin/go)"
# Never let a module ask for a toolchain download, and build static binaries like upstream does.
export GOTOOLCHAIN=local CGO_ENABLED=0
GO_P=()
[[ -n "${WATTSCALE_GO_P:-}" ]] && GO_P=(-p "$WATTSCALE_GO_P")
# If GNU time is there, report each build's peak memory (max RSS of its biggest process).
TIMEV=()
[[ -x /usr/bin/time ]] && TIMEV=(/usr/bin/time -f '    (peak RSS of biggest process: %M KiB, wall %e s)')

mkdir -p "$WATTSCALE_BIN_DIR" "$WATTSCALE_SRC_DIR"
# Two builds at once (two terminals, two test runs) would write the same files: take turns.
take_lock bins 3600
log "bin dir: $WATTSCALE_BIN_DIR"
log "go: $("$GO" version), GOMODCACHE=$("$GO" env GOMODCACHE), GOCACHE=$("$GO" env GOCACHE)"

# kwokctl-style per-binary variables that may point at an existing binary.
env_var_for() {
    case "$1" in
    kube-apiserver) echo KWOK_KUBE_APISERVER_BINARY ;;
    kube-controller-manager) echo KWOK_KUBE_CONTROLLER_MANAGER_BINARY ;;
    kube-scheduler) echo KWOK_KUBE_SCHEDULER_BINARY ;;
    kubectl) echo KWOK_KUBECTL_BINARY ;;
    etcd) echo KWOK_ETCD_BINARY ;;
    kwok) echo KWOK_CONTROLLER_BINARY ;;
    *) echo "" ;;
    esac
}

# find_existing NAME: true if NAME is already usable in the bin dir, possibly after symlinking a
# binary of the right version found elsewhere.
find_existing() {
    local name="$1" var candidate
    if has_wanted_version "$WATTSCALE_BIN_DIR/$name" "$name"; then
        log "ok: $name $(wanted_version "$name") already in bin dir"
        return 0
    fi
    local candidates=()
    var="$(env_var_for "$name")"
    [[ -n "$var" && -n "${!var:-}" ]] && candidates+=("${!var}")
    [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && candidates+=("$KUBEBUILDER_ASSETS/$name")
    candidate="$(command -v "$name" || true)"
    [[ -n "$candidate" ]] && candidates+=("$candidate")
    for candidate in "${candidates[@]}"; do
        if has_wanted_version "$candidate" "$name"; then
            log "ok: using $candidate ($(wanted_version "$name")) for $name"
            ln -sfn "$(readlink -f "$candidate")" "$WATTSCALE_BIN_DIR/$name"
            return 0
        fi
    done
    # The cache is keyed per binary: a bin dir made for other versions of OTHER binaries (a bump
    # of helm alone, say) already holds this one at the right version. Hard-linked, so it stays
    # even if that old dir is deleted.
    for candidate in "$WATTSCALE_CACHE"/bin-*/"$name"; do
        [[ "$candidate" -ef "$WATTSCALE_BIN_DIR/$name" ]] && continue
        if has_wanted_version "$candidate" "$name"; then
            log "ok: reusing $candidate ($(wanted_version "$name")) for $name"
            candidate="$(readlink -f "$candidate")"
            rm -f "$WATTSCALE_BIN_DIR/$name"
            ln "$candidate" "$WATTSCALE_BIN_DIR/$name" 2>/dev/null ||
                cp "$candidate" "$WATTSCALE_BIN_DIR/$name"
            return 0
        fi
    done
    return 1
}

# new_wrapper_module DIR MODULE: an empty Go module used only to pin and build dependencies.
# A wrapper is needed because k8s.io/kubernetes and etcd have local `replace` directives in their
# go.mod, which makes `go install pkg@version` refuse to build them.
new_wrapper_module() {
    mkdir -p "$1"
    cd "$1"
    [[ -f go.mod ]] || "$GO" mod init "$2" >/dev/null 2>&1
    "$GO" mod edit -go=1.26.0
}

# ---- kube-apiserver, kube-controller-manager, kube-scheduler, kubectl --------------------------
build_k8s() {
    local names=("$@") staging="v0.${K8S_VERSION#1.}" minor kmod pkgs=() m
    minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
    new_wrapper_module "$WATTSCALE_SRC_DIR/k8s-$K8S_VERSION" wattscale.local/k8sbins
    # k8s.io/kubernetes requires each staging module (k8s.io/api, client-go, ...) at v0.0.0 and
    # replaces it with ./staging/...; replaces only apply in the main module, so we replace every
    # v0.0.0 requirement with the published v0.<minor>.<patch> tag. The list is derived, not typed.
    kmod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    while read -r m; do
        "$GO" mod edit -replace="$m=$m@$staging"
    done < <("$GO" mod edit -json "$kmod" |
        python3 -c 'import json,sys; print("\n".join(r["Path"] for r in json.load(sys.stdin).get("Require") or [] if r["Version"]=="v0.0.0"))')
    log "    $(grep -c '=> k8s.io/' go.mod) staging modules replaced at $staging"
    for m in "${names[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$m"); done
    "$GO" get "${pkgs[@]/%/@v$K8S_VERSION}"
    # Stamp the version exactly like upstream's hack/lib/version.sh; a fixed date keeps rebuilds
    # byte-identical (and the compile cache warm).
    local ld="-s -w" kv
    for kv in "gitVersion=v$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
        gitCommit=0000000000000000000000000000000000000000 buildDate=2026-01-01T00:00:00Z; do
        ld+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
    done
    # One `go build` for all of them shares the compile work; -o DIR/ names each after its package.
    "${TIMEV[@]}" "$GO" build "${GO_P[@]}" -mod=mod -trimpath -tags selinux,notest,grpcnotrace \
        -ldflags "$ld" -o "$WATTSCALE_BIN_DIR/" "${pkgs[@]}"
}

# ---- etcd --------------------------------------------------------------------------------------
build_etcd() {
    new_wrapper_module "$WATTSCALE_SRC_DIR/etcd-$ETCD_VERSION" wattscale.local/etcdbin
    "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    # The main package is the module root; without -o FILE the binary would be called "v3".
    "${TIMEV[@]}" "$GO" build "${GO_P[@]}" -mod=mod -trimpath -ldflags "-s -w" \
        -o "$WATTSCALE_BIN_DIR/etcd" go.etcd.io/etcd/server/v3
}

# ---- kwok, kwokctl -----------------------------------------------------------------------------
build_kwok() {
    local names=("$@") pkgs=() m
    for m in "${names[@]}"; do pkgs+=("sigs.k8s.io/kwok/cmd/$m@v$KWOK_VERSION"); done
    # kwok's go.mod has no replace directives, so plain `go install` works.
    GOBIN="$WATTSCALE_BIN_DIR" "${TIMEV[@]}" "$GO" install "${GO_P[@]}" -trimpath \
        -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v$K8S_VERSION" \
        "${pkgs[@]}"
}

# ---- helm --------------------------------------------------------------------------------------
build_helm() {
    local client_go major minor ld v=helm.sh/helm/v3
    new_wrapper_module "$WATTSCALE_SRC_DIR/helm-$HELM_VERSION" wattscale.local/helmbin
    "$GO" get "$v/cmd/helm@v$HELM_VERSION"
    # Stamp it as helm's own release build does (its Makefile): the Kubernetes version that
    # `helm template` and `helm lint` assume without a cluster is that of the client-go it is
    # built with. Without this, helm falls back to v1.20.0, and a plain offline
    # `helm template t helm/wattscale` fails the chart's kubeVersion (>= 1.27).
    client_go="$("$GO" list -mod=mod -m -f '{{.Version}}' k8s.io/client-go)" # v0.36.2
    major=$((${client_go:1:1} + 1))
    minor="$(cut -d. -f2 <<<"$client_go")"
    ld="-s -w -X $v/internal/version.version=v$HELM_VERSION -X $v/internal/version.metadata="
    ld+=" -X $v/internal/version.gitTreeState=clean"
    ld+=" -X $v/pkg/chartutil.k8sVersionMajor=$major -X $v/pkg/chartutil.k8sVersionMinor=$minor"
    ld+=" -X $v/pkg/lint/rules.k8sVersionMajor=$major -X $v/pkg/lint/rules.k8sVersionMinor=$minor"
    "${TIMEV[@]}" "$GO" build "${GO_P[@]}" -mod=mod -trimpath -ldflags "$ld" \
        -o "$WATTSCALE_BIN_DIR/helm" "$v/cmd/helm"
}

# ---- main --------------------------------------------------------------------------------------
total_start=$(date +%s)
missing_k8s=()
missing_kwok=()
for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    find_existing "$name" || missing_k8s+=("$name")
done
if ((${#missing_k8s[@]})); then
    run_step "build ${missing_k8s[*]} v$K8S_VERSION" build_k8s "${missing_k8s[@]}"
fi
find_existing etcd || run_step "build etcd v$ETCD_VERSION" build_etcd
for name in kwok kwokctl; do
    find_existing "$name" || missing_kwok+=("$name")
done
if ((${#missing_kwok[@]})); then
    run_step "build ${missing_kwok[*]} v$KWOK_VERSION" build_kwok "${missing_kwok[@]}"
fi
find_existing helm || run_step "build helm v$HELM_VERSION" build_helm

# Verify everything, so a wrong version stamp is caught here and not in dev-up.
for name in "${WATTSCALE_BINARIES[@]}"; do
    has_wanted_version "$WATTSCALE_BIN_DIR/$name" "$name" ||
        die "$name in $WATTSCALE_BIN_DIR does not report $(wanted_version "$name"): '$(binary_version_output "$WATTSCALE_BIN_DIR/$name" "$name")'"
    log "    $name: $(binary_version_output "$WATTSCALE_BIN_DIR/$name" "$name")"
done
log "all binaries ready in $(($(date +%s) - total_start))s"
echo "$WATTSCALE_BIN_DIR"
