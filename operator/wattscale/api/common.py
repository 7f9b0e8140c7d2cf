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

SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""An RFC 1123 subdomain (length checked apart): most object names (Secret, PVC, ...)."""

LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A label value (at most 63 characters too): what a nodeSelector value must be."""

QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""A non-negative resource.Quantity (8, 500m, 64Gi, 1e3), as the API server parses it."""

ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
"""What the API server accepts as a container environment variable name."""

SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""What the API server accepts as a key of a Secret's data."""

PATTERN_WORDS = {
    NAME_PATTERN: "a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a "
    "letter or digit)",
    SUBDOMAIN_PATTERN: "a lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.', starting and "
    "ending with a letter or digit)",
    LABEL_VALUE_PATTERN: "a label value (A-Z, a-z, 0-9, '-', '_' and '.', starting and ending "
    "with a letter or digit)",
    QUANTITY_PATTERN: "a Kubernetes quantity such as 8, 500m or 64Gi",
    ENV_NAME_PATTERN: "an environment variable name (letters, digits, '-', '_' and '.', not "
    "starting with a digit)",
    SECRET_KEY_PATTERN: "a Secret key (letters, digits, '-', '_' and '.')",
}
"""What each pattern means, in words: `wattscale validate` says this instead of the regex."""


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
