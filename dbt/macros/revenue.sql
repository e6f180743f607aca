{#- The one definition of a revenue order: its final status is neither canceled nor unavailable. -#}
{% macro is_revenue_order(status_column) -%}
    {{ status_column }} not in ('canceled', 'unavailable')
{%- endmacro %}
