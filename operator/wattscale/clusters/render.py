"""Render the vLLM Deployment and Service for one InferenceDeployment in one region (pure).

What we render is applied with server-side apply under our own field manager. ``spec.replicas``
is deliberately absent: replica counts are set through the ``/scale`` subresource, so applying a
spec change never fights a scaling decision. A hash of the rendered object goes into an
annotation, so drift made by hand is visible and can be reverted.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from wattscale.api.inference import InferenceDeploymentSpec, ResolvedVariant
from wattscale.api.region import RegionWorkloads

Manifest = dict[str, Any]

FIELD_MANAGER = "wattscale"
LABEL_DEPLOYMENT = "wattscale.io/deployment"
LABEL_NAMESPACE = "wattscale.io/namespace"
LABEL_REGION = "wattscale.io/region"
LABEL_VARIANT = "wattscale.io/variant"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_HASH = "wattscale.io/spec-hash"
ANNOTATION_OWNER = "wattscale.io/owner"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


RUN_AS_ID = 1000
"""uid, gid and fsGroup of the vLLM container: the vLLM image's default user is root, which
``runAsNonRoot`` alone would refuse to start."""
SCRATCH = "/tmp"
"""The only writable path besides the caches (an emptyDir): HOME and vLLM's own caches."""

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUFFIX = "-vllm"


def workload_name(deployment: str, variant: str = "") -> str:
    """Name of the vLLM Deployment and Service in every member cluster: unique per
    InferenceDeployment name (and variant), and a valid Service name (a DNS-1035 label, <= 63
    characters).

    ``<name>-vllm`` when that is valid (every name the operator ever used for a short name);
    otherwise a shortened, cleaned name with 8 hex digits of the full name's SHA-256, so two
    long names sharing their first 50 characters no longer map to the same workload. A variant
    other than the first (``variant`` not empty) is ``<name>-<variant>-vllm``, by the same rule.
    """
    full = f"{deployment}-{variant}" if variant else deployment
    plain = f"{full}{_SUFFIX}"
    if len(plain) <= 63 and _DNS_1035.match(plain):
        return plain
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9-]+", "-", full.lower())
    if not stem[:1].isalpha():
        stem = "w-" + stem
    stem = stem[: 63 - len(_SUFFIX) - len(digest) - 1].strip("-")
    return f"{stem}-{digest}{_SUFFIX}"


def owner_of(namespace: str, deployment: str) -> str:
    """The value of the owner annotation on everything rendered for one InferenceDeployment."""
    return f"{namespace}/{deployment}"


def namespace_labels(pod_security: str) -> dict[str, str]:
    """Labels of a namespace the operator creates: managed-by, and the Region's Pod Security
    level enforced (warned and audited too, so a kubectl user sees why a pod is refused)."""
    return {
        LABEL_MANAGED_BY: "wattscale",
        "pod-security.kubernetes.io/enforce": pod_security,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": pod_security,
        "pod-security.kubernetes.io/audit": pod_security,
    }


def selector_labels(deployment: str, namespace: str, variant: str = "") -> dict[str, str]:
    """Labels that select this InferenceDeployment's pods (stable: never change them); a variant
    other than the first adds its name (the first keeps the selector it always had)."""
    labels = {LABEL_DEPLOYMENT: deployment, LABEL_NAMESPACE: namespace}
    if variant:
        labels[LABEL_VARIANT] = variant
    return labels


def _labels(deployment: str, namespace: str, region: str, variant: str = "") -> dict[str, str]:
    return {
        **selector_labels(deployment, namespace, variant),
        LABEL_REGION: region,
        LABEL_MANAGED_BY: "wattscale",
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": deployment,
        "app.kubernetes.io/component": "inference",
    }


def spec_hash(manifest: Manifest) -> str:
    """A short stable hash of what we render, stored in an annotation to spot drift."""
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()[:16]


def _env(spec: InferenceDeploymentSpec, cache_path: str) -> list[dict[str, Any]]:
    """Ours first (a writable HOME and caches on a read-only root), then the spec's: for a
    name given twice the later entry wins, so a spec may point HF_HOME elsewhere."""
    out: list[dict[str, Any]] = [
        {"name": "HOME", "value": SCRATCH},
        {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH}/.cache"},
        {"name": "HF_HOME", "value": cache_path},
        {"name": "VLLM_CACHE_ROOT", "value": f"{SCRATCH}/.cache/vllm"},
    ]
    for var in spec.engine.env:
        if var.secretKeyRef is not None:
            ref = {"name": var.secretKeyRef.name, "key": var.secretKeyRef.key}
            out.append({"name": var.name, "valueFrom": {"secretKeyRef": ref}})
        else:
            out.append({"name": var.name, "value": var.value or ""})
    return out


def _cache_volume(
    spec: InferenceDeploymentSpec, workloads: RegionWorkloads | None
) -> tuple[dict[str, Any], bool] | None:
    """The model cache's volume source and whether it is read-only; None when there is none.

    A named cache comes from the Region (``workloads``); a region that does not offer it is
    never planned for (see fleet/observe.py), so it renders without one (e.g. to scale to 0).
    """
    cache = spec.engine.modelCache
    if cache is None:
        return None
    if cache.persistentVolumeClaim:
        return {"persistentVolumeClaim": {"claimName": cache.persistentVolumeClaim}}, False
    offer = workloads.model_cache(cache.name) if workloads and cache.name else None
    if offer is None:
        return None
    if offer.persistentVolumeClaim:
        claim = {"claimName": offer.persistentVolumeClaim, "readOnly": offer.readOnly}
        return {"persistentVolumeClaim": claim}, offer.readOnly
    return {"hostPath": {"path": offer.hostPath, "type": "Directory"}}, offer.readOnly


def pod_security_context() -> dict[str, Any]:
    """The pod's securityContext: passes the "restricted" Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "fsGroup": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """The vLLM container's securityContext: no privilege, no capability, read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def _volumes(
    spec: InferenceDeploymentSpec, workloads: RegionWorkloads | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The pod's volumes, the container's mounts and where the model cache is: shared
    memory, a scratch dir (the cache's default home) and the Region's model cache if named."""
    engine = spec.engine
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": engine.shmSize}},
        {"name": "scratch", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "scratch", "mountPath": SCRATCH},
    ]
    cache_path = f"{SCRATCH}/huggingface"
    cache = _cache_volume(spec, workloads)
    if cache is not None and engine.modelCache is not None:
        source, read_only = cache
        cache_path = engine.modelCache.mountPath
        volumes.append({"name": "model-cache", **source})
        mounts.append({"name": "model-cache", "mountPath": cache_path, "readOnly": read_only})
    return volumes, mounts, cache_path


def _container(
    spec: InferenceDeploymentSpec,
    chosen: ResolvedVariant,
    mounts: list[dict[str, Any]],
    cache_path: str,
) -> dict[str, Any]:
    """The vLLM container of one variant: its args, GPUs, restricted security context and
    health probes."""
    engine = spec.engine
    gpus = str(chosen.gpus_per_replica)
    args = [
        "--model",
        spec.model,
        "--port",
        str(engine.port),
        "--tensor-parallel-size",
        gpus,
        *engine.args,
        *chosen.args,
    ]
    cold_start = spec.placement.coldStartSeconds
    return {
        "name": "vllm",
        "image": engine.image,
        "args": args,
        "env": _env(spec, cache_path),
        "ports": [{"name": "http", "containerPort": engine.port, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": engine.cpu, "memory": engine.memory, GPU_RESOURCE: gpus},
            "limits": {GPU_RESOURCE: gpus},
        },
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        # vLLM answers /health once the engine is up; loading a model can take minutes, so
        # the startup probe allows coldStartSeconds x 2 before the kubelet gives up.
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": max(6, (2 * cold_start) // 10),
        },
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 15,
            "failureThreshold": 4,
        },
    }


def render_deployment(
    *,
    name: str,
    namespace: str,
    region: str,
    spec: InferenceDeploymentSpec,
    workloads: RegionWorkloads | None = None,
    variant: int = 0,
) -> Manifest:
    """The vLLM Deployment of one variant (the first by default) for one region, without
    ``spec.replicas`` (see module doc).

    ``workloads`` is the Region's ``spec.workloads``: where a named model cache comes from.
    """
    engine = spec.engine
    chosen = engine.resolved_variants(None)[variant]
    key = chosen.name if variant else ""  # the first variant renders as it always did
    labels = _labels(name, namespace, region, key)
    volumes, mounts, cache_path = _volumes(spec, workloads)
    container = _container(spec, chosen, mounts, cache_path)
    body: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": workload_name(name, key),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_OWNER: owner_of(namespace, name)},
        },
        "spec": {
            "selector": {"matchLabels": selector_labels(name, namespace, key)},
            # Make-before-break inside a region too: a new pod must be Ready before an old one
            # goes, and never more than one extra GPU replica at a time.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(engine.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "nodeSelector": {GPU_PRODUCT_LABEL: chosen.gpu_product},
                    "tolerations": [
                        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "terminationGracePeriodSeconds": 60,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
    body["metadata"]["annotations"][ANNOTATION_HASH] = spec_hash(body["spec"])
    return body


def render_service(
    *, name: str, namespace: str, region: str, port: int, variant: str = ""
) -> Manifest:
    """A ClusterIP Service in front of the region's vLLM pods: all of them for the first
    variant's (``<name>-vllm``, as before variants), one variant's for the others."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": workload_name(name, variant),
            "namespace": namespace,
            "labels": _labels(name, namespace, region, variant),
            "annotations": {ANNOTATION_OWNER: owner_of(namespace, name)},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, namespace, variant),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
