"""`wattscale signals read` on files that need no server: CSV, time-of-use and static events."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.fakes import data
from wattscale.api.sources import SecretKeyRef
from wattscale.cli_signals import add_signals_parser, parse_secret_flags, secret_resolver

pytestmark = pytest.mark.unit


def run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="wattscale")
    add_signals_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    buf = io.StringIO()
    code = args.func(args, console=Console(file=buf, width=200))
    return code, buf.getvalue()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_region_file_prints_values_age_and_forecast(tmp_path: Path) -> None:
    region = write(
        tmp_path,
        "region.yaml",
        f"""
apiVersion: wattscale.io/v1alpha1
kind: Region
metadata: {{name: eu-frankfurt}}
spec:
  energy:
    currency: EUR
    price: {{type: csv, path: {data.prices_csv("DE-LU")}}}
    carbon: {{type: csv, path: {data.carbon_csv("DE-LU")}}}
    gridEvents:
      type: static
      events:
        - {{start: "2023-07-02T11:00:00Z", end: "2023-07-02T16:00:00Z", capFraction: 0,
            reason: maintenance}}
""",
    )
    code, out = run(["signals", "read", "--region-file", str(region), "--at", "2023-07-02T12:30Z"])
    assert code == 0
    assert "-0.50000" in out  # the real -500 EUR/MWh hour
    assert "EUR/kWh" in out
    assert "gCO2eq/kWh" in out
    assert "cap 0%" in out
    assert "maintenance" in out


def test_config_file_json_output_for_a_tou_tariff(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "tou.yaml",
        """
type: tou
timezone: America/New_York
currency: USD
defaultPricePerKwh: "0.12"
windows:
  - {days: [Mon, Tue, Wed, Thu, Fri], start: "16:00", end: "21:00", pricePerKwh: "0.31"}
""",
    )
    code, out = run(
        ["signals", "read", "--config", str(cfg), "--at", "2024-11-04T21:30:00+00:00", "--json"]
    )
    assert code == 0
    result = json.loads(out)
    assert result[0]["signal"] == "price"
    assert result[0]["value"] == pytest.approx(0.31)  # 16:30 EST on a Monday
    assert result[0]["unit"] == "USD/kWh"
    assert result[0]["stale"] is False


def test_ambiguous_or_invalid_configs_exit_2(tmp_path: Path) -> None:
    csv_cfg = write(tmp_path, "c.yaml", f"type: csv\npath: {data.carbon_csv('GB')}\n")
    code, out = run(["signals", "read", "--config", str(csv_cfg)])
    assert code == 2
    assert "--kind" in out
    code, _ = run(
        [
            "signals",
            "read",
            "--config",
            str(csv_cfg),
            "--kind",
            "carbon",
            "--at",
            "2024-01-01T00:00Z",
        ]
    )
    assert code == 0
    bad = write(tmp_path, "bad.yaml", "type: entsoe\nbiddingZone: short\n")
    code, out = run(["signals", "read", "--config", str(bad)])
    assert code == 2
    assert "biddingZone" in out
    assert "securityTokenSecretRef" in out
    code, out = run(["signals", "read", "--config", str(tmp_path / "missing.yaml")])
    assert code == 2


def test_feed_errors_exit_1_without_a_traceback(tmp_path: Path) -> None:
    cfg = write(tmp_path, "p.yaml", "type: csv\npath: /nonexistent/prices.csv\n")
    code, out = run(["signals", "read", "--config", str(cfg), "--kind", "price"])
    assert code == 1
    assert "cannot read" in out
    assert "Traceback" not in out


def test_secret_flags_and_environment() -> None:
    flags = parse_secret_flags(["entsoe/token=abc", "ops/em/token=def"])
    resolve = secret_resolver(flags, {"WATTSCALE_SECRET_WATT_TIME_PASSWORD": "pw"})
    assert resolve(SecretKeyRef(name="entsoe", key="token")) == "abc"
    assert resolve(SecretKeyRef(name="em", key="token", namespace="ops")) == "def"
    assert resolve(SecretKeyRef(name="watt-time", key="password")) == "pw"
    with pytest.raises(KeyError, match="WATTSCALE_SECRET_NOPE_KEY"):
        resolve(SecretKeyRef(name="nope", key="key"))
