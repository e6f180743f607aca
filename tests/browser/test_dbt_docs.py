"""The dbt docs in a real browser: `olist docs serve` generates them into a private target
folder and serves them on a free 127.0.0.1 port; the page renders our overview block
(dbt/models/overview.md) and its project tree lists every model dbt's manifest has."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from olist_dev.background import BackgroundServer
from olist_dev.e2e import free_port
from tests.browser.conftest import screenshot

OLIST = Path(sys.executable).with_name("olist")
OVERVIEW = DBT_PROJECT_DIR / "models" / "overview.md"
PACKAGE = "olist"


class DocsServer(BackgroundServer):
    name = "olist docs serve"


def overview_headings(markdown: str) -> list[str]:
    """The headings of the ``__overview__`` docs block, in order, without their ``#``s (code
    blocks skipped: a ``#`` there is not a heading)."""
    block = re.search(r"{%\s*docs\s+__overview__\s*%}(.*?){%\s*enddocs\s*%}", markdown, re.S)
    if block is None:
        raise ValueError("no {% docs __overview__ %} block")
    headings, in_code = [], False
    for line in block.group(1).splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            headings.append(heading.group(1))
    return headings


def manifest_models(manifest: dict, package: str = PACKAGE) -> dict[str, PurePosixPath]:
    """Model name → its folder under models/ (how the docs' project tree nests it)."""
    return {
        node["name"]: PurePosixPath(node["original_file_path"]).parent
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == package
    }


def test_overview_headings_skip_code_and_other_blocks():
    text = (
        "{% docs other %}\n# Not ours\n{% enddocs %}\n"
        "{% docs __overview__ %}\n# Title — here\n\n```\n# a comment\n```\n## Layers ##\n"
        "text # not a heading\n{% enddocs %}\n"
    )
    assert overview_headings(text) == ["Title — here", "Layers"]
    with pytest.raises(ValueError):
        overview_headings("{% docs other %}# x{% enddocs %}")


def test_manifest_models_nest_by_folder():
    manifest = {"nodes": {
        "model.olist.a": {"name": "a", "resource_type": "model", "package_name": "olist",
                          "original_file_path": "models/marts/a.sql"},
        "test.olist.t": {"name": "t", "resource_type": "test", "package_name": "olist",
                         "original_file_path": "models/marts/_marts.yml"},
        "model.dep.b": {"name": "b", "resource_type": "model", "package_name": "dep",
                        "original_file_path": "models/b.sql"},
    }}  # fmt: skip
    assert manifest_models(manifest) == {"a": PurePosixPath("models/marts")}


@pytest.fixture(scope="module")
def docs(settings, tmp_path_factory) -> Iterator[tuple[DocsServer, Path]]:
    """`olist docs serve` on a free port, writing into a private target folder (dbt/target is
    the code location's manifest) and logs."""
    work = tmp_path_factory.mktemp("dbt_docs")
    target = work / "target"
    argv = [str(OLIST), "docs", "serve", "--port", str(port := free_port()),
            "--target-path", str(target)]  # fmt: skip
    env = {**os.environ, "DBT_LOG_PATH": str(work / "logs")}
    with DocsServer(argv, env, port, work / "docs.log").start(timeout=300) as server:
        yield server, target


@pytest.fixture
def page(browser, docs):
    server, _ = docs
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(server.url)
    yield page
    page.close()


def test_the_page_renders_our_overview(page):
    headings = overview_headings(OVERVIEW.read_text())
    assert headings[0].startswith("Olist real-time analytics")
    page.locator("h1").filter(has_text=headings[0]).wait_for()
    for heading in headings:
        assert page.get_by_role("heading", name=heading, exact=True).first.is_visible(), heading
    screenshot(page, "dbt_docs.png", full_page=False)


def test_the_project_tree_lists_every_model(page, docs):
    _, target = docs
    models = manifest_models(json.loads((target / "manifest.json").read_text()))
    assert {"stg_orders", "int_orders_latest", "fact_orders", "dim_customers",
            "agg_daily_revenue"} <= set(models)  # fmt: skip
    tree = page.locator("model-tree")
    # Projects › olist › models › <folder>: each level opens on a click.
    opened: set[PurePosixPath] = set()
    tree.get_by_text(PACKAGE, exact=True).filter(visible=True).first.click()
    for folder in sorted(set(models.values())):
        for level in [*reversed(folder.parents[:-1]), folder]:
            if level not in opened:
                tree.get_by_text(level.name, exact=True).filter(visible=True).first.click()
                opened.add(level)
    for model in models:
        # The project tab's node (the database and group tabs hold hidden ones too).
        node = tree.locator(f'a[data-nav-unique-id="model.{PACKAGE}.{model}"]')
        node.filter(visible=True).first.wait_for()
        assert node.filter(visible=True).get_attribute("title") == model  # text: truncated
