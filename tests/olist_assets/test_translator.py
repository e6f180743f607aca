"""The one place that maps dbt names to Dagster (the translator), and the top-states table,
without services."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg

from olist_assets.defs.dbt.assets import top_states_table
from olist_assets.lib.translator import OlistDbtTranslator

MODEL = {
    "resource_type": "model",
    "name": "fact_orders",
    "unique_id": "model.olist.fact_orders",
    "fqn": ["olist", "marts", "fact_orders"],
}
SOURCE = {
    "resource_type": "source",
    "name": "raw_orders",
    "source_name": "raw",
    "unique_id": "source.olist.raw.raw_orders",
    "fqn": ["olist", "staging", "raw", "raw_orders"],
    "meta": {"dagster": {"asset_key": ["raw_orders"]}},
}


def test_models_keep_their_bare_name_and_sources_their_declared_key():
    translator = OlistDbtTranslator()
    assert translator.get_asset_key(MODEL) == dg.AssetKey("fact_orders")
    assert translator.get_asset_key(SOURCE) == dg.AssetKey("raw_orders")


def test_group_is_the_models_folder_and_models_follow_eagerly():
    translator = OlistDbtTranslator()
    assert translator.get_group_name(MODEL) == "marts"
    assert translator.get_group_name({**MODEL, "fqn": ["olist", "x"]}) == "dbt"
    assert translator.get_automation_condition(MODEL) is not None


def test_models_link_to_their_dbt_docs_page(monkeypatch):
    monkeypatch.setenv("OLIST_DBT_DOCS_PORT", "8999")
    from kafka_io.settings import get_settings

    get_settings.cache_clear()
    metadata = OlistDbtTranslator().get_metadata(MODEL)
    assert metadata["dbt_docs"].url == "http://127.0.0.1:8999/#!/model/model.olist.fact_orders"


def test_top_states_table_rounds_money_and_keeps_the_order():
    table = top_states_table(
        [("SP", 10, Decimal("1234.565"), Decimal("123.4565")), ("RJ", 3, None, None)]
    )
    assert [c.name for c in table.schema.columns] == [
        "state", "revenue_orders", "revenue_brl", "avg_order_value_brl",
    ]  # fmt: skip
    rows = [r.data for r in table.records]
    assert rows[0] == {
        "state": "SP", "revenue_orders": 10, "revenue_brl": 1234.57, "avg_order_value_brl": 123.46,
    }  # fmt: skip
    assert rows[1]["revenue_brl"] == 0.0
