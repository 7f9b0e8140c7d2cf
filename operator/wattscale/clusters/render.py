"""Render the vLLM Deployment and Service for one InferenceDeployment in one region (pure).

What we render is applied with server-side apply under our own field manager. ``spec.replicas``
is deliberately absent: replica counts are set through the ``/scale`` subresource, so applying a
spec change never fights a scaling decision. A hash of the rendered object goes into an
annotation, so drift made by hand is visible and can be reverted.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from wattscale.api.inference import InferenceDeploymentSpec

Manifest = dict[str, Any]

FIELD_MANAGER = "wattscale"
LABEL_DEPLOYMENT = "wattscale.io/deployment"
LABEL_NAMESPACE = "wattscale.io/namespace"
LABEL_REGION = "wattscale.io/region"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_HASH = "wattscale.io/spec-hash"
ANNOTATION_OWNER = "wattscale.io/owner"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def workload_name(deployment: str) -> str:
    """Name of the vLLM Deployment and Service in every member cluster."""
    return f"{deployment}-vllm"[:63].rstrip("-")


def selector_labels(deployment: str, namespace: str) -> dict[str, str]:
    """Labels that select this InferenceDeployment's pods (stable: never change them)."""
    return {LABEL_DEPLOYMENT: deployment, LABEL_NAMESPACE: namespace}


def _labels(deployment: str, namespace: str, region: str) -> dict[str, str]:
    return {
        **selector_labels(deployment, namespace),
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


def _env(spec: InferenceDeploymentSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for var in spec.engine.env:
        if var.secretKeyRef is not None:
            ref = {"name": var.secretKeyRef.name, "key": var.secretKeyRef.key}
            out.append({"name": var.name, "valueFrom": {"secretKeyRef": ref}})
        else:
            out.append({"name": var.name, "value": var.value or ""})
    return out


def render_deployment(
    *, name: str, namespace: str, region: str, spec: InferenceDeploymentSpec
) -> Manifest:
    """The vLLM Deployment for one region, without ``spec.replicas`` (see module doc)."""
    engine = spec.engine
    labels = _labels(name, namespace, region)
    gpus = str(engine.gpusPerReplica)
    args = [
        "--model",
        spec.model,
        "--port",
        str(engine.port),
        "--tensor-parallel-size",
        gpus,
        *engine.args,
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": engine.shmSize}}
    ]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    cache = engine.modelCache
    if cache is not None:
        if cache.persistentVolumeClaim:
            source: dict[str, Any] = {
                "persistentVolumeClaim": {"claimName": cache.persistentVolumeClaim}
            }
        else:
            source = {"hostPath": {"path": cache.hostPath, "type": "DirectoryOrCreate"}}
        volumes.append({"name": "model-cache", **source})
        mounts.append({"name": "model-cache", "mountPath": cache.mountPath})
    cold_start = spec.placement.coldStartSeconds
    container = {
        "name": "vllm",
        "image": engine.image,
        "args": args,
        "env": _env(spec),
        "ports": [{"name": "http", "containerPort": engine.port, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": engine.cpu, "memory": engine.memory, GPU_RESOURCE: gpus},
            "limits": {GPU_RESOURCE: gpus},
        },
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
    body: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": workload_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_OWNER: f"{namespace}/{name}"},
        },
        "spec": {
            "selector": {"matchLabels": selector_labels(name, namespace)},
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
                    "nodeSelector": {GPU_PRODUCT_LABEL: engine.gpuProduct},
                    "tolerations": [
                        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
    body["metadata"]["annotations"][ANNOTATION_HASH] = spec_hash(body["spec"])
    return body


def render_service(*, name: str, namespace: str, region: str, port: int) -> Manifest:
    """A ClusterIP Service in front of the region's vLLM pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": workload_name(name),
            "namespace": namespace,
            "labels": _labels(name, namespace, region),
            "annotations": {ANNOTATION_OWNER: f"{namespace}/{name}"},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, namespace),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
