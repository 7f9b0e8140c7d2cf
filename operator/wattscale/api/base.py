"""Building blocks shared by every API model: the base class, cross-field rules and small types.

A cross-field rule is written once, as a :class:`Rule`, and used twice: the pydantic model checks
it in Python (so the operator, the CLI and the simulator refuse the same objects) and the CRD
generator emits it as a CEL ``x-kubernetes-validations`` rule (so ``kubectl apply`` refuses the
object at the API server with the same message). A test applies the malformed examples to a real
API server and compares the messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def _to_decimal(value: Any) -> Decimal:
    """Accept "2.49" (a string, as the CRD schema asks) or a Decimal; refuse the rest clearly."""
    if isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, str) and re.fullmatch(DECIMAL_PATTERN, value.strip()):
        parsed = Decimal(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError(
            "decimal_string",
            'must be a quoted decimal string such as "2.49" (got {got} without quotes)',
            {"got": repr(value)},
        )
    else:
        raise PydanticCustomError(
            "decimal_string",
            'must be a decimal number such as "2.49" (got {got})',
            {"got": repr(value)},
        )
    if not parsed.is_finite():
        raise PydanticCustomError("decimal_string", "must be a finite decimal number")
    return parsed


DecimalString = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "maxLength": 32}),
]
"""An exact decimal written as a string in YAML ("2.49"), as Kubernetes asks instead of floats."""


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, checked in Python and (when ``cel`` is set) by the API server.

    ``cel`` is evaluated by the API server with ``self`` bound to the model's object;
    ``check`` is its Python twin. ``message`` is what both say; ``detail`` (Python only) may add
    the offending values. CEL messages stay static: a ``messageExpression`` that formats numbers
    is priced by the API server's cost estimator as an unbounded string and refused.
    ``cel=None`` marks a rule the schema enforces some other way (e.g. ``x-kubernetes-list-type``)
    so that only the Python twin is needed. ``field`` names the field the error points at.
    """

    cel: str | None
    check: Callable[[Any], bool]
    message: str
    field: str | None = None
    detail: Callable[[Any], str] | None = None

    def render(self, obj: Any) -> str:
        return self.detail(obj) if self.detail is not None else self.message

    def to_cel(self) -> dict[str, str]:
        out: dict[str, str] = {"rule": self.cel or "true", "message": self.message}
        if self.field:
            out["fieldPath"] = "." + self.field
        return out


class ApiModel(BaseModel):
    """Base of every CRD model: camelCase fields, unknown fields refused, rules enforced."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, use_enum_values=True)

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(schema)
            rules = [r.to_cel() for r in cls.cel_rules if r.cel is not None]
            if rules:
                target["x-kubernetes-validations"] = rules
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).cel_rules:
            if not rule.check(self):
                raise PydanticCustomError(
                    "wattscale_rule",
                    "{message}",
                    {"message": rule.render(self), "field": rule.field or ""},
                )
        return self
