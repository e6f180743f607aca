"""How the dashboard writes its figures: pure functions, shared by the app and the tests that
compare what the page shows with SQL over the marts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd


def count(value: int | None) -> str:
    return f"{int(value or 0):,}"


def brl(value: Decimal | float | None) -> str:
    return f"R$ {float(value or 0):,.2f}"


def percent(part: Decimal | float | None, whole: Decimal | float | None) -> str:
    """``part / whole`` as a percentage with one decimal; an em dash when ``whole`` is 0."""
    if not whole:
        return "—"
    return f"{100 * float(part or 0) / float(whole):.1f}%"


def age(then: datetime | None, now: datetime) -> str:
    """How long ago ``then`` was, coarsely (12s, 5m 3s, 2h 10m, 3d 4h); "never" for None."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def repeat_share(buckets: list[dict[str, Any]]) -> str:
    """Share of customers with more than one order, from the repeat_customers query's buckets
    (dim_customers by number of orders): numerator and denominator are the same customers, the
    ones whose latest order is in the filters."""
    everyone = sum(int(b["customers"]) for b in buckets)
    repeat = sum(int(b["customers"]) for b in buckets if b["orders_bucket"] > 1)
    return percent(repeat, everyone)


def kpi_cards(
    kpis: dict[str, Any], customers: int, buckets: list[dict[str, Any]]
) -> dict[str, str]:
    """Label → value of the KPI cards, from the kpis, customers and repeat_customers queries."""
    return {
        "Total orders": count(kpis["orders"]),
        "Revenue": brl(kpis["revenue"]),
        "Average order value": brl(kpis["avg_order_value"]),
        "Customers": count(customers),
        "Freight / revenue": percent(kpis["freight"], kpis["revenue"]),
        "Repeat customers": repeat_share(buckets),
    }


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame whose Decimal columns are floats (what the charts plot)."""
    df = pd.DataFrame(rows)
    for column in df.columns:
        if len(df) and isinstance(df[column].iloc[0], Decimal):
            df[column] = df[column].astype(float)
    return df
