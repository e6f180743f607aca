"""The dashboard as an external asset downstream of the marts it reads, so the lineage ends
where users look. Streamlit serves it (`make dashboard`, compose's `dashboard` service); Dagster
does not materialize it: it reads the marts live."""

import dagster as dg

from kafka_io.settings import get_settings
from olist_assets.lib.policies import OWNERS

# What olist_dashboard/queries.py reads (the marts and the serving views over raw's freshness).
READS = [
    "fact_orders",
    "dim_customers",
    "agg_daily_revenue",
    "marts_freshness",
    "ingest_per_minute",
]

dashboard = dg.AssetSpec(
    "dashboard",
    deps=READS,
    kinds={"streamlit"},
    group_name="serving",
    owners=OWNERS,
    description=(
        "Live dashboard over the marts (olist_dashboard/app.py), read with the read-only role: "
        "KPIs, revenue by day and state, delivery, freshness, ingestion rate. It reloads itself "
        "within seconds of a mart build. Open it with `make dashboard`."
    ),
    metadata={"url": dg.MetadataValue.url(get_settings().dashboard_url)},
)
