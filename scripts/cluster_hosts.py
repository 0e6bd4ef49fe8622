"""Airflow's hostname for a Celery worker of scripts/cluster.sh.

On one machine (loopback): the machine's name and the worker's tag, so that two workers are told
apart in task_instance.hostname. With `up --machines` each worker is a network host of its own:
its address, which is what the API server connects to for the worker's logs (port 8793)."""

import os
import socket


def name() -> str:
    address = os.environ.get("CLUSTER_WORKER_ADDRESS")
    if address:
        return address
    return f"{socket.gethostname()}-{os.environ.get('CLUSTER_WORKER_TAG', 'worker')}"
