"""Types shared by both CRDs: conditions, last decision, object references."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from wattscale.api.base import ApiModel

GROUP = "wattscale.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""An RFC 1123 label: what Kubernetes accepts as a Region or namespace name."""

SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""An RFC 1123 subdomain (length checked apart): e.g. a PersistentVolumeClaim name."""


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Ready, SLOMet, SignalsFresh, Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    lastTransitionTime: datetime = Field(description="When the status last changed.")
    observedGeneration: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was set from."
    )


class Decision(ApiModel):
    """The last decision the control loop took, in words a person can read."""

    time: datetime = Field(description="When the decision was taken.")
    reason: str = Field(description="Reason code, e.g. ScaleUp, ShiftStarted, StaleSignalsHold.")
    message: str = Field(description="What was decided and why, in plain words.")


class NamespacedName(ApiModel):
    """A reference to a namespaced object."""

    name: str = Field(min_length=1, description="Object name.")
    namespace: str | None = Field(
        default=None, description="Namespace; defaults to the referring object's namespace."
    )
