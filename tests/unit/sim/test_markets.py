"""Price knowledge: each market's publication rule, read from a table, shown to every policy."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import numpy as np
import pytest

from tests.unit.sim.conftest import make_scenario
from wattscale.sim.errors import SimInputError
from wattscale.sim.markets import (
    DAY_AHEAD,
    MarketRule,
    PriceKnowledge,
    known_hours,
    load_table,
    rules_for,
    shipped_table,
)

pytestmark = pytest.mark.unit

JULY = datetime(2024, 7, 8, tzinfo=UTC)


def test_the_shipped_table_knows_the_shared_regions_and_their_kinds() -> None:
    table = shipped_table()
    day_ahead = {r for r, rule in table.items() if rule.day_ahead}
    assert {"US-CAL-CISO", "US-TEX-ERCO", "DE-LU", "FR", "NL", "JP-TK"} <= day_ahead
    for region in ("US-MIDA-PJM", "CA-ON", "AU-NSW", "SG"):
        assert not table[region].day_ahead
    assert all(rule.source for rule in table.values())


def test_caiso_next_day_is_known_from_13_pacific() -> None:
    rule = shipped_table()["US-CAL-CISO"]
    known = known_hours(rule, JULY, 2 * 1440)
    # 2024-07-08 13:00 PDT = 20:00 UTC: the Pacific day 07-09 (to 07-10 07:00 UTC) appears.
    assert known[20 * 60 - 1] == 31  # through the end of Pacific 07-08 = 07-09 07:00 UTC
    assert known[20 * 60] == 55  # through the end of Pacific 07-09 = 07-10 07:00 UTC


def test_sdac_is_known_from_12_45_cet_and_ercot_from_13_30_central() -> None:
    table = shipped_table()
    eu = known_hours(table["DE-LU"], JULY, 1440)
    # 12:45 CEST = 10:45 UTC; the German day 07-09 ends 07-09 22:00 UTC = hour 46.
    assert eu[10 * 60 + 44] == 22
    assert eu[10 * 60 + 45] == 46
    tx = known_hours(table["US-TEX-ERCO"], JULY, 1440)
    # 13:30 CDT = 18:30 UTC; the Central day 07-09 ends 07-10 05:00 UTC = hour 53.
    assert tx[18 * 60 + 29] == 29
    assert tx[18 * 60 + 30] == 53


def test_real_time_and_unknown_regions_know_only_past_hours() -> None:
    pjm = known_hours(shipped_table()["US-MIDA-PJM"], JULY, 180)
    mine = known_hours(rules_for(["MY-OWN"], {})[0], JULY, 180)
    expected = np.arange(180) // 60
    assert np.array_equal(pjm, expected)
    assert np.array_equal(mine, expected)


def test_the_view_carries_each_region_s_last_known_price_forward() -> None:
    prices = np.column_stack([np.arange(60.0), 100.0 + np.arange(60.0)])
    rules = (
        MarketRule("DA", DAY_AHEAD, time(12, 0), "UTC"),
        MarketRule("RT"),
    )
    knowledge = PriceKnowledge(prices, np.array([-1.0, 99.0]), rules, JULY, 1440)
    first = knowledge.view(0)
    assert first.shape == (24, 2)
    assert np.array_equal(first[:, 0], prices[:24, 0])
    assert np.all(first[:, 1] == 99.0)  # the hour before the start
    noon = knowledge.view(12 * 60)
    assert noon.shape == (48, 2)
    assert np.array_equal(noon[:, 0], prices[:48, 0])
    assert np.all(noon[12:, 1] == prices[11, 1])
    assert np.array_equal(noon[:12, 1], prices[:12, 1])


def test_an_override_table_replaces_rows_and_bad_rows_are_one_line_errors(
    tmp_path: Path,
) -> None:
    path = tmp_path / "markets.csv"
    path.write_text(
        "region,kind,publish_local_time,time_zone\nUS-MIDA-PJM,day-ahead,12:00,America/New_York\n",
        encoding="utf-8",
    )
    table = load_table(path)
    assert table["US-MIDA-PJM"].day_ahead
    assert table["US-CAL-CISO"].day_ahead
    path.write_text(
        "region,kind,publish_local_time,time_zone\nX,day-ahead,,UTC\n", encoding="utf-8"
    )
    with pytest.raises(SimInputError, match="publish_local_time"):
        load_table(path)
    path.write_text("region,kind\nX,real-time\n", encoding="utf-8")
    with pytest.raises(SimInputError, match="missing column"):
        load_table(path)
    with pytest.raises(SimInputError, match="not found"):
        load_table(tmp_path / "nope.csv")


def test_every_policy_is_shown_the_same_view() -> None:
    sc = make_scenario(np.full(120, 1000.0), np.arange(10.0)[:, None] + 1.0)
    assert sc.known_prices(61) is sc.known_prices(62)
    assert not sc.known_prices(61).flags.writeable
