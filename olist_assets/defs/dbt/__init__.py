"""dbt: every model of `dbt/` as an asset (dbt build: tests become asset checks), the docs,
and the daily full-history test run."""
