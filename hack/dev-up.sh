#!/usr/bin/env bash
# Bring up the local multi-region development stack, with no container engine and no internet:
#
#   hub          the control cluster: our CRDs, and one kubeconfig Secret per region
#   us-west  \
#   us-east   }  region clusters, each with a few fake GPU nodes (KWOK) that run pods "for real"
#   eu-central/   as far as the API is concerned (scheduled, Running, Ready; nothing executes)
#
# Each cluster is etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, run as
# plain processes by `kwokctl --runtime binary`, listening on 127.0.0.1 only, using the binaries
# built by hack/k8s-bins.sh (kwokctl is told where each one is, so it never downloads anything).
#
# Usage: hack/dev-up.sh [CLUSTER...]     default: the hub and every region (see hack/lib.sh)
# Idempotent: a cluster that is already up is left alone; a stopped one is started again.
# WATTSCALE_APPLY_CRDS=0 skips applying crds/*.yaml to the hub (the e2e suite applies them itself,
# to assert on the API server's verdict). A CRD the API server rejects makes dev-up exit 1.
# Afterwards:
#   kubectl --kubeconfig ~/.cache/wattscale/clusters/us-west.kubeconfig get nodes
# Stop everything with hack/dev-down.sh.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HACK_DIR/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

GPU_NODES_PER_REGION="${WATTSCALE_GPU_NODES_PER_REGION:-3}"
GPUS_PER_NODE="${WATTSCALE_GPUS_PER_NODE:-8}"
GPU_PRODUCT="${WATTSCALE_GPU_PRODUCT:-NVIDIA-H100-80GB-HBM3}"
SYSTEM_NAMESPACE="wattscale-system"
# How long a condition the API server sets may take (as tests/e2e/stack.py's API_WAIT_SECONDS):
# well under a second idle, longer on a busy 2-core machine.
API_WAIT_SECONDS="${WATTSCALE_API_WAIT_SECONDS:-120}"

if (($#)); then clusters=("$@"); else read -r -a clusters <<<"$WATTSCALE_HUB $WATTSCALE_REGIONS"; fi

require_bins
lock_stack
export PATH="$WATTSCALE_BIN_DIR:$PATH"
export KWOK_WORKDIR="$WATTSCALE_KWOK_WORKDIR"
mkdir -p "$KWOK_WORKDIR" "$WATTSCALE_CLUSTERS_DIR"
start_all=$(date +%s)

# kwokctl reads $KWOK_WORKDIR/kwok.yaml as its defaults. Every binary is given explicitly: a binary
# left unset means "download it from the release page", which fails here (no internet).
write_kwokctl_config() {
    local b="$WATTSCALE_BIN_DIR"
    cat >"$KWOK_WORKDIR/kwok.yaml" <<EOF
# Written by hack/dev-up.sh; overwritten on every run.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: v$K8S_VERSION
  etcdVersion: $ETCD_VERSION
  bindAddress: 127.0.0.1          # default is 0.0.0.0; every server must stay on loopback
  quietPull: true
  disableQPSLimits: true
  kubeApiserverBinary: $b/kube-apiserver
  kubeControllerManagerBinary: $b/kube-controller-manager
  kubeSchedulerBinary: $b/kube-scheduler
  kubectlBinary: $b/kubectl
  etcdBinary: $b/etcd
  kwokControllerBinary: $b/kwok
componentsPatches:
- name: etcd
  extraArgs:
  - {key: unsafe-no-fsync, value: "true"}   # throw-away data: skip fsync, much faster on slow disks
EOF
}

kubeconfig_of() { echo "$WATTSCALE_CLUSTERS_DIR/$1.kubeconfig"; }
kc() {
    local name="$1"
    shift
    kubectl --kubeconfig "$(kubeconfig_of "$name")" "$@"
}

# create_cluster NAME: kwokctl's create is itself idempotent (an existing, ready cluster is left
# alone; an existing stopped one is started), so it is always safe to call.
create_cluster() {
    local name="$1"
    # --kubeconfig "" : do not touch ~/.kube/config. --wait: until the apiserver answers.
    # The daemons kwokctl forks must not inherit ANY open file descriptor beyond stdio: one that
    # holds a lock (ours, or a caller's, e.g. the e2e sessions lock) would stay held for as long
    # as the cluster runs, and deadlock the next dev-up, dev-down or test session.
    (
        close_inherited_fds
        exec kwokctl -v WARN --name "$name" create cluster --kubeconfig "" --wait 120s --timeout 5m
    )
    # kwokctl's kubeconfig points at files under its pki/ dir; inline them so the file is
    # self-contained (it is also what goes into the hub's Secret).
    kubectl config view --raw --minify --flatten \
        --kubeconfig "$KWOK_WORKDIR/clusters/$name/kubeconfig.yaml" >"$(kubeconfig_of "$name").tmp"
    mv "$(kubeconfig_of "$name").tmp" "$(kubeconfig_of "$name")"
    chmod 600 "$(kubeconfig_of "$name")"
    log "    $name: $(grep -m1 'server:' "$(kubeconfig_of "$name")" | awk '{print $2}') ($(kubeconfig_of "$name"))"
}

# gpu_nodes REGION: Node manifests for fake GPU nodes. The kwok controller started by kwokctl
# manages nodes annotated kwok.x-k8s.io/node=fake: it keeps the status we create them with
# (capacity/allocatable, including nvidia.com/gpu), marks them Ready and heartbeats their lease.
gpu_nodes() {
    local region="$1" i zone zones=(a b c)
    for ((i = 0; i < GPU_NODES_PER_REGION; i++)); do
        zone="$region-${zones[i % 3]}" # us-west-a, us-west-b, us-west-c, us-west-a, ...
        cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $region-gpu-$i
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: $region-gpu-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: fake-8x-h100
    nvidia.com/gpu.product: $GPU_PRODUCT
    nvidia.com/gpu.count: "$GPUS_PER_NODE"
    topology.kubernetes.io/region: $region
    topology.kubernetes.io/zone: $zone
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS_PER_NODE"}
  capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS_PER_NODE"}
EOF
    done
}

setup_region() {
    local region="$1"
    gpu_nodes "$region" | kc "$region" apply -f - >/dev/null
    wait_until "$API_WAIT_SECONDS" "the GPU nodes of $region to be Ready" \
        kc "$region" wait --for=condition=Ready node -l type=kwok --timeout=10s
    log "    $region: $(kc "$region" get nodes -l nvidia.com/gpu.product --no-headers | wc -l) GPU nodes Ready, $GPUS_PER_NODE x $GPU_PRODUCT each"
}

# Store a region's kubeconfig in the hub, in the shape a Region's clusterRef expects.
register_region() {
    local region="$1"
    kc "$WATTSCALE_HUB" create secret generic "region-$region-kubeconfig" -n "$SYSTEM_NAMESPACE" \
        --from-file=kubeconfig="$(kubeconfig_of "$region")" --dry-run=client -o yaml |
        kc "$WATTSCALE_HUB" label --local -f - -o yaml \
            app.kubernetes.io/managed-by=wattscale-dev-up "wattscale.dev/region=$region" |
        kc "$WATTSCALE_HUB" apply -f - >/dev/null
    log "    hub: secret $SYSTEM_NAMESPACE/region-$region-kubeconfig"
}

# apply_crds: server-side apply every crds/*.yaml to the hub and wait until it is Established.
# A CRD the API server rejects is reported (with the server's message) and makes dev-up exit 1 at
# the very end, after everything else is up.
crds_rejected=()
apply_crds() {
    local crds=() f
    shopt -s nullglob
    crds=("$REPO_DIR"/crds/*.yaml)
    shopt -u nullglob
    if ((${#crds[@]} == 0)); then
        log "    no crds/*.yaml in the repo yet; skipping"
        return 0
    fi
    for f in "${crds[@]}"; do
        # Server-side apply: no last-applied annotation, so large CRDs do not hit its size limit.
        if kc "$WATTSCALE_HUB" apply --server-side --force-conflicts \
            --field-manager=wattscale-dev-up -f "$f" >/dev/null &&
            wait_until "$API_WAIT_SECONDS" "${f#"$REPO_DIR"/} to be Established" \
                kc "$WATTSCALE_HUB" wait --for=condition=Established --timeout=10s -f "$f"; then
            log "    hub: applied and Established: ${f#"$REPO_DIR"/}"
        else
            log "    hub: REJECTED by the API server: ${f#"$REPO_DIR"/} (message above)"
            crds_rejected+=("${f#"$REPO_DIR"/}")
        fi
    done
}

write_kwokctl_config
for name in "${clusters[@]}"; do
    run_step "cluster $name" create_cluster "$name"
done
for name in "${clusters[@]}"; do
    [[ "$name" == "$WATTSCALE_HUB" ]] && continue
    run_step "fake GPU nodes in $name" setup_region "$name"
done
if [[ " ${clusters[*]} " == *" $WATTSCALE_HUB "* ]]; then
    run_step "namespace $SYSTEM_NAMESPACE on the hub" \
        bash -c "kubectl create namespace $SYSTEM_NAMESPACE --dry-run=client -o yaml |
                 kubectl --kubeconfig '$(kubeconfig_of "$WATTSCALE_HUB")' apply -f - >/dev/null"
    for name in $WATTSCALE_REGIONS; do
        if [[ -f "$(kubeconfig_of "$name")" ]]; then register_region "$name"; fi
    done
    if [[ "${WATTSCALE_APPLY_CRDS:-1}" == 1 ]]; then
        log "==> CRDs on the hub"
        apply_crds
    else
        log "WATTSCALE_APPLY_CRDS=0: not applying crds/*.yaml"
    fi
fi

log "dev stack up in $(($(date +%s) - start_all))s; $(stack_rss_summary)"
log "kubeconfigs: $WATTSCALE_CLUSTERS_DIR/<cluster>.kubeconfig   (clusters: ${clusters[*]})"
log "e.g.: kubectl --kubeconfig $(kubeconfig_of "${clusters[-1]}") get nodes -L nvidia.com/gpu.product,topology.kubernetes.io/zone"
if ((${#crds_rejected[@]})); then
    die "the clusters are up, but the hub's API server rejected: ${crds_rejected[*]}"
fi
