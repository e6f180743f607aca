{#-
    Custom schema names are used as-is (`staging`, `analytics`), not appended to the target
    schema as dbt does by default. An optional prefix (var `schema_prefix`, else env
    OLIST_SCHEMA_PREFIX) lets tests and developers build into isolated schemas.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set prefix = var('schema_prefix', env_var('OLIST_SCHEMA_PREFIX', '')) -%}
    {%- if custom_schema_name is none -%}
        {{ prefix ~ (target.schema | trim) }}
    {%- else -%}
        {{ prefix ~ (custom_schema_name | trim) }}
    {%- endif -%}
{%- endmacro %}
