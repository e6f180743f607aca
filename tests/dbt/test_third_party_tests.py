"""A dbt package's generic tests run here unchanged: tests/dbt/fixtures/generic_pkg (installed with
`dbt deps` from a local path into a copy of the project) has a test that sets no `where`, as
dbt_utils' and dbt-expectations' do. Applied to this project's models it compiles and runs with
the per-batch scope, with a `where` of its own, and with `where` unset (None)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from psycopg import sql

from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from olist_dev.dbt_sandbox import DBT_BIN
from tests.dbt.expected_marts import sample_orders

pytestmark = pytest.mark.services

PACKAGE = Path(__file__).parent / "fixtures" / "generic_pkg"

# The project's per-batch marker (inherited from dbt_project.yml) and a plain filter of its own.
# A null `where` in yml falls back to the project's marker, so the test without any `where`
# (None, as a test outside this project's `data_tests` config gets) is run with the marker
# removed from the copy's dbt_project.yml.
PACKAGE_TESTS = """\
      - generic_pkg.expression_holds:
          name: pkg_batch_scoped
          arguments: {expression: "customer_city <> 'misplaced'"}
      - generic_pkg.expression_holds:
          name: pkg_own_where
          arguments: {expression: "customer_city <> 'misplaced'"}
          config: {where: "item_count >= 0"}
      - generic_pkg.expression_holds:
          name: pkg_no_where
          arguments: {expression: "customer_city <> 'misplaced'"}
"""


def copy_project(destination: Path) -> Path:
    """The dbt project with the local package declared and its tests applied to fact_orders."""
    project = destination / "dbt"
    shutil.copytree(
        DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    (project / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE}\n")
    # As fact_orders' model-level tests (a model is described in one file only; its row-level
    # invariants are constraints, so it has no model-level tests of its own).
    marts = project / "models" / "marts" / "_marts.yml"
    head, tail = marts.read_text().split("  - name: fact_orders\n", 1)
    description, columns = tail.split("    columns:\n", 1)
    marts.write_text(
        f"{head}  - name: fact_orders\n{description}    data_tests:\n{PACKAGE_TESTS}"
        f"    columns:\n{columns}"
    )
    deps = subprocess.run(
        [str(DBT_BIN), "deps", "--project-dir", str(project), "--profiles-dir", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deps.returncode == 0, deps.stdout + deps.stderr
    return project


def package_results(run) -> dict[str, tuple[str, int]]:
    return {
        r["unique_id"].split(".")[2]: (r["status"], r["failures"])
        for r in run.results
        if r["unique_id"].split(".")[2].startswith("pkg_")
    }


def test_package_generic_tests_compile_and_run(dbt_env, olist_data, events_of, tmp_path):
    dbt_env.project_dir = copy_project(tmp_path)
    events = events_of(sample_orders(olist_data, first=200))
    dbt_env.load(events[:-30])
    first = dbt_env.dbt("build", "--exclude-resource-type", "unit_test")
    assert package_results(first) == {
        "pkg_batch_scoped": ("pass", 0),
        "pkg_own_where": ("pass", 0),
        "pkg_no_where": ("pass", 0),
    }

    # A bad row of history (outside the next batch) and a good batch: only the tests that
    # read whole tables see it.
    old_order = events[0]["order"]["order_id"]
    batch = [e for e in events[-30:] if e["order"]["order_id"] != old_order]
    dbt_env.rows(
        sql.SQL("update {} set customer_city = 'misplaced' where order_id = %s returning 1").format(
            sql.Identifier(dbt_env.schema("analytics"), "fact_orders")
        ),
        (old_order,),
    )
    dbt_env.load(batch)
    second = dbt_env.dbt("build", "--exclude-resource-type", "unit_test", check=False)
    assert package_results(second) == {
        "pkg_batch_scoped": ("pass", 0),
        "pkg_own_where": ("fail", 1),
        "pkg_no_where": ("pass", 0),
    }
    compiled = dbt_env.target_path(dbt_env.prefix) / "compiled"
    scoped = next(compiled.rglob("pkg_batch_scoped.sql")).read_text()
    assert "fact_orders__change_set" in scoped
    own = next(compiled.rglob("pkg_own_where.sql")).read_text()
    assert "where item_count >= 0" in own and "__change_set" not in own

    # No `where` at all: the override gets None, and the test reads the whole table.
    config = dbt_env.project_dir / "dbt_project.yml"
    config.write_text(config.read_text().replace('+where: "__rebuilt_rows__"', ""))
    unset = dbt_env.dbt("test", "--select", "pkg_no_where", check=False)
    assert package_results(unset) == {"pkg_no_where": ("fail", 1)}
    whole = next(compiled.rglob("pkg_no_where.sql")).read_text()
    assert "dbt_subquery" not in whole
