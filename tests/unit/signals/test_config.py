"""The source config models: discriminated unions, rules and refusals with clear messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from wattscale.api.sources import CarbonSource, GridEventSource, PriceSource

pytestmark = pytest.mark.unit

PRICE: TypeAdapter[Any] = TypeAdapter(PriceSource)
CARBON: TypeAdapter[Any] = TypeAdapter(CarbonSource)
EVENTS: TypeAdapter[Any] = TypeAdapter(GridEventSource)
REF = {"name": "s", "key": "k"}


def test_each_kind_validates_to_its_model() -> None:
    kinds: dict[str, dict[str, Any]] = {
        "entsoe": {"biddingZone": "10Y1001A1001A82H", "securityTokenSecretRef": REF},
        "electricityMaps": {"zone": "DE", "authTokenSecretRef": REF},
        "tou": {"timezone": "Europe/Paris", "defaultPricePerKwh": "0.2"},
        "csv": {"path": "/data/p.csv"},
        "prometheus": {"baseUrl": "http://p:9090", "query": "x"},
    }
    for kind, body in kinds.items():
        assert PRICE.validate_python({"type": kind, **body}).type == kind
    cfg = CARBON.validate_python(
        {
            "type": "wattTime",
            "wattTimeRegion": "CAISO_NORTH",
            "usernameSecretRef": REF,
            "passwordSecretRef": REF,
        }
    )
    assert cfg.refreshSeconds == 300
    assert EVENTS.validate_python({"type": "static"}).events == []


@pytest.mark.parametrize(
    ("adapter", "body", "message"),
    [
        (PRICE, {"type": "csv"}, "exactly one of path or url"),
        (PRICE, {"type": "csv", "path": "a", "url": "http://b"}, "exactly one of path or url"),
        (PRICE, {"type": "tou", "timezone": "Europe/Paris", "defaultPricePerKwh": 0.2}, "quoted"),
        (PRICE, {"type": "csv", "path": "a", "fxRateToRegionCurrency": "0"}, "greater than 0"),
        (PRICE, {"type": "csv", "path": "a", "currency": "euro"}, "pattern"),
        (PRICE, {"type": "nordpool"}, "does not match any of the expected tags"),
        (PRICE, {"type": "csv", "path": "a", "zone": "DE"}, "Extra inputs are not permitted"),
        (CARBON, {"type": "gbCarbonIntensity", "gbRegionId": 3, "postcode": "RG10"}, "at most one"),
        (CARBON, {"type": "gbCarbonIntensity", "gbRegionId": 18}, "less than or equal to 17"),
        (EVENTS, {"type": "openadr3", "baseUrl": "x", "clientIdSecretRef": REF}, "or neither"),
        (EVENTS, {"type": "openadr3", "baseUrl": "x", "simpleLevelCapFractions": [1, 2]}, "1"),
        (
            EVENTS,
            {
                "type": "static",
                "events": [
                    {
                        "start": "2026-01-01T10:00:00Z",
                        "end": "2026-01-01T09:00:00Z",
                        "capFraction": 0,
                    }
                ],
            },
            "end must be after start",
        ),
        (
            EVENTS,
            {
                "type": "static",
                "events": [
                    {"start": "2026-01-01T10:00:00", "end": "2026-01-01T11:00:00", "capFraction": 0}
                ],
            },
            "UTC offset",
        ),
    ],
)
def test_refusals_say_what_is_wrong(
    adapter: TypeAdapter[Any], body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        adapter.validate_python(body)
