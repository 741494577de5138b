#!/usr/bin/env python3
"""Times Airflow's parse of a compiled bundle's DAG folder, as the dag-processor parses it
(BundleDagBag: every file imported, its DAGs collected), and the DAGs' serialization (what the
dag-processor stores), after one unmeasured warm-up. Run with the Airflow venv's python:

    .venv-airflow/bin/python benches/airflow_parse.py BUNDLE/airflow [RUNS]
    .venv-airflow/bin/python benches/airflow_parse.py --baseline N FOLDER [RUNS]

The second form first writes N plain DAG files into FOLDER/dags for comparison: each a DAG of
its own with a cron string and two BashOperators, as one writes them by hand without a factory.
AIRFLOW_HOME should be a scratch folder; the plugin folder is set from the bundle.
"""

import os
import statistics
import sys
import time

PLAIN = """from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="plain_{i}", schedule="{m} {h} * * *", catchup=False, max_active_runs=1):
    backup = BashOperator(task_id="backup", bash_command="ovrun backup --config /r/{i}.json")
    restore = BashOperator(task_id="restore", bash_command="ovrun restore --config /r/{i}.json")
    backup >> restore
"""

if sys.argv[1] == "--baseline":
    count, folder = int(sys.argv[2]), sys.argv[3]
    os.makedirs(os.path.join(folder, "dags"), exist_ok=True)
    for i in range(count):
        path = os.path.join(folder, "dags", f"plain_{i}.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(PLAIN.format(i=i, m=i % 60, h=i % 24))
    sys.argv[1:4] = [folder]
folder = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = os.path.join(folder, "plugins")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(folder, "dags")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "false")

from airflow.dag_processing.dagbag import BundleDagBag  # noqa: E402
from airflow.serialization.serialized_objects import DagSerialization  # noqa: E402


def parse():
    started = time.perf_counter()
    bag = BundleDagBag(
        os.path.join(folder, "dags"),
        bundle_path=os.path.join(folder, "dags"),
        bundle_name="dags-folder",
    )
    parsed = time.perf_counter() - started
    assert not bag.import_errors, bag.import_errors
    started = time.perf_counter()
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)
    return len(bag.dags), parsed, time.perf_counter() - started


parse()
results = [parse() for _ in range(runs)]
dags = results[0][0]
for name, index in (("parse", 1), ("serialize", 2)):
    times = [r[index] for r in results]
    print(
        f"{name}: {dags} DAGs, median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, {1000 * statistics.median(times) / dags:.2f} ms per DAG"
    )
