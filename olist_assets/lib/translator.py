"""The one place that maps dbt names to asset keys, groups, automation and docs links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from kafka_io.settings import get_settings
from olist_assets.lib.policies import OWNERS, freshness_policy

MART_GROUP = "marts"


class OlistDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # Models under their bare name (stg_orders, fact_orders, ...); sources keep the
        # default, which honours `meta.dagster.asset_key` (raw_orders).
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # The folder under models/: staging, intermediate, marts.
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        spec = spec.replace_attributes(owners=OWNERS)
        if spec.group_name == MART_GROUP:
            # What users read must be recent; staging follows raw_orders in the same run.
            spec = spec.replace_attributes(freshness_policy=freshness_policy())
        return spec

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        # New raw events reach the marts with no person acting.
        return dg.AutomationCondition.eager()

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        unique_id = dbt_resource_props.get("unique_id")
        if dbt_resource_props.get("resource_type") == "model" and unique_id:
            docs = get_settings().dbt_docs_url
            metadata["dbt_docs"] = dg.MetadataValue.url(f"{docs}/#!/model/{unique_id}")
        return metadata
