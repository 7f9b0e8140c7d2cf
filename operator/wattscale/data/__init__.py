"""Bundled data: a small sample of real prices, carbon and a load trace for `wattscale simulate`.

See `sample/README.md` for what the files are, where they come from and their licences.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_TRACE = SAMPLE_DIR / "traces" / "servegen_language_m-large_rate_10min.csv"
SAMPLE_REGIONS = ("US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM")
SAMPLE_START = "2024-07-08"
SAMPLE_DAYS = 3
