"""Who owns the assets and how fresh they must be: one place for every asset of the graph."""

from datetime import timedelta

import dagster as dg

from kafka_io.settings import get_settings

# Every asset has an owner the UI shows and alerts can route to.
OWNERS = ["team:olist-data-platform"]


def freshness_policy() -> dg.FreshnessPolicy:
    """raw_orders and the marts must have materialized within OLIST_RAW_FRESHNESS_MINUTES
    (default 60; warn at half of it): evaluated by the daemon's freshness loop (dagster.yaml
    `freshness.enabled`), shown on each asset's page."""
    limit = timedelta(minutes=get_settings().raw_freshness_minutes)
    return dg.FreshnessPolicy.time_window(fail_window=limit, warn_window=limit / 2)
