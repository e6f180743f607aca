"""`dbt build` as assets (tests land as asset checks), with row counts and a revenue summary.

After each ingestion batch the build tests only what the batch rewrote (dbt/macros/
batch_tests.sql) and skips the unit tests; a daily scheduled run tests whole tables."""

import json

import dagster as dg
from dagster_dbt import dbt_assets

from kafka_io.settings import get_settings
from olist_assets.lib.charts import markdown_image, sparkline_svg
from olist_assets.lib.dbt_project import dbt_project
from olist_assets.lib.dbt_resource import OlistDbtResource
from olist_assets.lib.marts import revenue_summary, top_states
from olist_assets.lib.policies import OWNERS
from olist_assets.lib.resources import current_dbt_pool
from olist_assets.lib.translator import OlistDbtTranslator

# One dbt process per warehouse at a time: the per-batch build of the sensor's run, declarative
# automation, the docs and the daily full-history job all claim this pool's one slot.
DBT_POOL = current_dbt_pool()

TOP_STATES_KEY = dg.AssetKey("agg_daily_revenue")


TOP_STATES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("state", "string"),
        dg.TableColumn("revenue_orders", "int"),
        dg.TableColumn("revenue_brl", "float"),
        dg.TableColumn("avg_order_value_brl", "float"),
    ]
)


def top_states_table(rows: list[tuple]) -> dg.TableMetadataValue:
    """The states with the most revenue as a table the UI renders (money rounded to cents)."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "state": state,
                    "revenue_orders": int(orders),
                    "revenue_brl": round(float(revenue or 0), 2),
                    "avg_order_value_brl": round(float(average or 0), 2),
                }
            )
            for state, orders, revenue, average in rows
        ],
        schema=TOP_STATES_SCHEMA,
    )


def revenue_metadata(summary: dict, previous: dict | None) -> dict[str, dg.MetadataValue]:
    """agg_daily_revenue's numeric metadata (the Plots tab charts each key over time) and its
    revenue-by-day sparkline, from `revenue_summary` and the previous materialization's
    metadata values (None on the first): ``*_added`` is what the batch changed in the totals."""
    totals, batch = summary["totals"], summary["batch"]
    before = previous or {}
    daily = summary["daily"]
    caption = (
        f"revenue by day, {daily[0][0]} to {daily[-1][0]}" if daily else "revenue by day (none)"
    )
    return {
        "orders_total": dg.MetadataValue.int(int(totals["orders"])),
        "revenue_total_brl": dg.MetadataValue.float(round(totals["revenue"], 2)),
        "orders_added": dg.MetadataValue.int(
            int(totals["orders"]) - int(before.get("orders_total", 0))
        ),
        "revenue_added_brl": dg.MetadataValue.float(
            round(totals["revenue"] - float(before.get("revenue_total_brl", 0.0)), 2)
        ),
        "batch_cells_rebuilt": dg.MetadataValue.int(int(batch["cells"])),
        "batch_cells_orders": dg.MetadataValue.int(int(batch["orders"])),
        "batch_cells_revenue_brl": dg.MetadataValue.float(round(batch["revenue"], 2)),
        "revenue_by_day": dg.MetadataValue.md(
            markdown_image(caption, sparkline_svg([value for _, value in daily]))
        ),
    }


def previous_metadata_values(context: dg.AssetExecutionContext) -> dict | None:
    """The plain values of agg_daily_revenue's latest stored materialization, if any."""
    event = context.instance.get_latest_materialization_event(TOP_STATES_KEY)
    if event is None or event.asset_materialization is None:
        return None
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


class DbtBuildConfig(dg.Config):
    full_history_tests: bool = False


def dbt_build_args(full_history_tests: bool = False) -> list[str]:
    """The `dbt build` arguments of a run.

    Per batch (default): data tests over the rows the batch rewrote (the project scopes them
    itself), and no unit tests: they test the SQL, which a batch does not change (dbt's advice:
    run them in development and CI, not on production data). `full_history_tests`: every data
    test over whole tables, and the unit tests (the scheduled run).
    """
    if full_history_tests:
        return ["build", "--vars", json.dumps({"full_history_tests": True})]
    return ["build", "--exclude-resource-type", "unit_test"]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=OlistDbtTranslator(),
    pool=DBT_POOL,
)
def olist_dbt_models(
    context: dg.AssetExecutionContext, dbt: OlistDbtResource, config: DbtBuildConfig
):
    args = dbt_build_args(config.full_history_tests)
    # Per batch, dbt runs in this process (olist_assets/lib/dbt_resource.py). The daily run
    # fetches row counts and column metadata through dagster-dbt's own dbt adapter, which a
    # dbt subprocess invocation has; once a day, its start-up does not matter.
    events = dbt.cli(args, context=context, in_process=not config.full_history_tests).stream()
    if config.full_history_tests:
        # A count(*) of every model reads whole tables: only the daily run pays for it, a
        # batch's cost stays in proportion to the batch. Column schemas (catalog) and lineage
        # (compiled SQL) too: they change with the SQL, not with a batch, and fetching them
        # cost ~6 of a small batch's ~10 s dbt step (measured: dagster-dbt's thread-pool wrapper
        # polls its futures in a busy loop for the whole dbt run, competing with dbt for CPU).
        events = events.fetch_row_counts().fetch_column_metadata()
    for event in events:
        if (
            isinstance(event, dg.Output)
            and context.asset_key_for_output(event.output_name) == TOP_STATES_KEY
        ):
            event = event.with_metadata(
                {
                    **event.metadata,
                    "top_states_by_revenue": top_states_table(top_states(get_settings())),
                    **revenue_metadata(
                        revenue_summary(get_settings()), previous_metadata_values(context)
                    ),
                }
            )
        yield event


@dg.asset(
    key="dbt_docs",
    deps=list(olist_dbt_models.keys),
    kinds={"dbt"},
    group_name="docs",
    owners=OWNERS,
    pool=DBT_POOL,
    # After the models change, at most every 5 minutes: regenerating the catalog after every
    # small ingestion run would compete with the next run for the CPU.
    automation_condition=dg.AutomationCondition.on_cron("*/5 * * * *"),
    description="dbt docs (catalog + manifest), regenerated after the models change; "
    "serve with `olist docs serve`.",
)
def dbt_docs(dbt: OlistDbtResource) -> dg.MaterializeResult:
    invocation = dbt.cli(["docs", "generate"], raise_on_error=True).wait()
    target = invocation.target_path
    return dg.MaterializeResult(
        metadata={
            "docs_url": dg.MetadataValue.url(get_settings().dbt_docs_url),
            "catalog": dg.MetadataValue.path(str(target / "catalog.json")),
        }
    )


full_history_tests_job = dg.define_asset_job(
    "dbt_full_history_tests",
    selection=dg.AssetSelection.assets(olist_dbt_models),
    config={"ops": {"olist_dbt_models": {"config": {"full_history_tests": True}}}},
    description="dbt build with every data test over whole tables, and the unit tests.",
)

# Per-batch runs test only the rows each batch rewrote; once a day every test reads
# everything, so a row broken outside any batch (or whose failure was ignored) is reported.
full_history_tests_schedule = dg.ScheduleDefinition(
    job=full_history_tests_job,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
