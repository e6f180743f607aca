"""Which run a round of `olist bench e2e` is attributed to, and its stages from the milestones."""

from olist_dev.bench.e2e import attributed_run, stage_seconds


def run(run_id: str, created: float, ended: float) -> dict:
    return {"runId": run_id, "creationTime": created, "endTime": ended}


def test_the_run_that_ends_after_the_marts_show_the_orders_is_attributed():
    # The marts show the orders at 20.0; the run that built them ends 3 s later (dbt's tests,
    # metadata): it is the round's run, not the earlier one.
    runs = [run("earlier", 1.0, 9.0), run("main", 10.0, 23.0)]
    assert attributed_run(runs, visible=20.0)["runId"] == "main"


def test_a_run_created_after_the_orders_showed_is_not_attributed():
    runs = [run("main", 10.0, 23.0), run("automation-later", 21.0, 30.0)]
    assert attributed_run(runs, visible=20.0)["runId"] == "main"
    assert attributed_run([run("late", 21.0, 30.0)], visible=20.0) is None


def test_stages_run_from_milestone_to_milestone_and_skip_missing_ones():
    stages = stage_seconds({"produced": 0.0, "tick": 2.5, "created": 3.0, "worker": 6.0})
    assert stages["sensor_wait"] == 2.5 and stages["sensor_tick"] == 0.5
    assert stages["queue"] is None and stages["spawn"] == 3.0
    assert stages["dbt"] is None
