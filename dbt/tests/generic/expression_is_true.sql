{#-
    Fails for every row where the expression is false. On a column the expression is
    appended to the column name (`>= 0`); on a model it is a whole predicate. A null result
    counts as a failure (unlike dbt_utils), so an invariant cannot pass by being null.
-#}
{% test expression_is_true(model, expression, column_name=none) %}

    select *
    from {{ model }}
    where
        {% if column_name is none -%}
            ({{ expression }}) is not true
        {%- else -%}
            ({{ column_name }} {{ expression }}) is not true
        {%- endif %}

{% endtest %}
