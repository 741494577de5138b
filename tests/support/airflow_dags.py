#!/usr/bin/env python3
"""What Airflow itself makes of a compiled bundle's DAGs, parsed once with its DagBag (run with
the Airflow venv's python, AIRFLOW_HOME and the DAG and plugin folders set):

    airflow_dags.py describe DAGS_FOLDER
        prints (as its last line) JSON: the import errors, and each DAG's id, display name, timetable (class,
        summary, zone), catchup, max_active_runs, and its tasks (queue, pool, retries, command
        lines, upstream task ids)
    airflow_dags.py runs DAGS_FOLDER FROM UNTIL
        prints JSON {VM name: [instants]}: every run each VM's DAG makes in (FROM, UNTIL] by its
        own timetable (next_dagrun_info, as the scheduler asks it), kept when the DAG's due
        task lets it through (its ovrun due command run at the run's instant: exit 0 keeps,
        1 drops, anything else is an error)
    airflow_dags.py outcomes DAGS_FOLDER PROBES_JSON
        prints JSON: for each probe {"argv": [...], "kill_after": seconds or null}, what the
        bundle's ovrun operator does with that command's exit code (run by the operator, killed
        through its on_kill after kill_after seconds): the exception it raises and the retry
        decision Airflow's retry policy takes on it ("fail" for AirflowFailException, which
        Airflow never retries)
"""

import json
import subprocess
import sys
from datetime import datetime, timezone

from airflow.dag_processing.dagbag import BundleDagBag
from airflow.timetables.base import TimeRestriction


def load(folder):
    # As the dag-processor reads a bundle: its folder on sys.path, for the DAG factory.
    return BundleDagBag(folder, bundle_path=folder, bundle_name="dags-folder")


def commands(task):
    return getattr(task, "commands", None) or (
        [task.argv(datetime(2000, 1, 1, tzinfo=timezone.utc))]
        if hasattr(task, "argv")
        else []
    )


def describe(bag):
    dags = []
    for dag_id, dag in sorted(bag.dags.items()):
        timetable = dag.timetable
        dags.append(
            {
                "dag_id": dag_id,
                "display_name": dag.dag_display_name,
                "description": dag.description,
                "timetable": type(timetable).__name__,
                "cron": timetable.summary,
                "zone": str(timetable._timezone),
                "catchup": dag.catchup,
                "max_active_runs": dag.max_active_runs,
                "paused_at_creation": dag.is_paused_upon_creation,
                "tasks": {
                    task.task_id: {
                        "queue": task.queue,
                        "pool": task.pool,
                        "retries": task.retries,
                        "commands": commands(task),
                        "upstream": sorted(task.upstream_task_ids),
                        "template_fields": list(task.template_fields),
                    }
                    for task in dag.tasks
                },
            }
        )
    errors = {path: text for path, text in bag.import_errors.items()}
    return {"import_errors": errors, "dags": dags}


def vm_of(dag):
    """The VM a backup DAG is for, from the runner config its backup task names."""
    config = dag.get_task("backup").commands[0][3]
    with open(config, encoding="utf-8") as f:
        return json.load(f)["vm"]


def instants(dag, start, until):
    restriction = TimeRestriction(earliest=start, latest=until, catchup=True)
    last = None
    while True:
        info = dag.timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        if info is None:
            return
        if info.run_after > start:
            yield info.run_after
        last = info.data_interval


def due(task, at):
    code = subprocess.run(task.argv(at), capture_output=True, check=False).returncode
    if code not in (0, 1):
        raise SystemExit(f"{task.argv(at)} exited {code}")
    return code == 0


def runs(bag, start, until):
    found = {}
    for dag in bag.dags.values():
        if not dag.dag_id.startswith("ovbackup_"):
            continue
        guard = dag.get_task("due") if dag.has_task("due") else None
        kept = [
            t for t in instants(dag, start, until) if guard is None or due(guard, t)
        ]
        found[vm_of(dag)] = [
            t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t in kept
        ]
    return found


def outcome(probe):
    import threading

    import ovplan_dags
    from airflow.sdk.exceptions import AirflowFailException

    task = ovplan_dags.Ovrun(
        task_id="probe",
        commands=[probe["argv"]],
        retry_policy=ovplan_dags.RETRY_POLICY,
    )
    if probe.get("kill_after") is not None:
        threading.Timer(probe["kill_after"], task.on_kill).start()
    try:
        task.execute({})
    except Exception as error:  # noqa: BLE001 - what the task raises is the answer
        if isinstance(error, AirflowFailException):
            return {"raised": type(error).__name__, "action": "fail", "delay": None}
        decision = task.retry_policy.evaluate(error, 1, 4)
        delay = decision.retry_delay
        return {
            "raised": type(error).__name__,
            "action": decision.action.value,
            "delay": delay.total_seconds() if delay else None,
        }
    return {"raised": None, "action": None, "delay": None}


def main():
    what, folder = sys.argv[1], sys.argv[2]
    if what == "outcomes":
        sys.path.append(folder)
        print("\n" + json.dumps([outcome(p) for p in json.loads(sys.argv[3])]))
        return
    bag = load(folder)
    if what == "describe":
        answer = describe(bag)
    elif what == "runs":
        import pendulum

        start, until = (pendulum.parse(text) for text in sys.argv[3:5])
        answer = runs(bag, start, until)
    else:
        raise SystemExit(f"unknown command {what}")
    # Airflow logs to standard output too: the answer is the last line.
    print("\n" + json.dumps(answer))


if __name__ == "__main__":
    main()
