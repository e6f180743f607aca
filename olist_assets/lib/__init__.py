"""Library code of the code location (resources, the dbt project, the translator, mart
queries): imported by `defs/`, never scanned for definitions itself."""
