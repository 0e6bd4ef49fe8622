"""Airflow's hostname for a Celery worker of scripts/cluster.sh: the machine's name and the
worker's tag, so that two workers on one machine are told apart in task_instance.hostname."""

import os
import socket


def name() -> str:
    return f"{socket.gethostname()}-{os.environ.get('CLUSTER_WORKER_TAG', 'worker')}"
