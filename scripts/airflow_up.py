#!/usr/bin/env python3
"""Run Airflow's components for this repository, in order, and stop them all on one Ctrl-C.

`airflow standalone` starts everything at once, so a scheduled run can reach a worker before the
API server (which tasks report to) answers; and on Ctrl-C it waits for children that are gone.
Here the API server starts first; the scheduler, DAG processor and triggerer start only once
its health endpoint answers. Each component runs in its own process group: one Ctrl-C (or a
TERM) stops every group, and whatever has not exited after a grace period is killed.

Run through scripts/airflow.sh (which sets AIRFLOW_HOME, AIRFLOW_CONFIG and PATH):
    scripts/airflow.sh up                       the local set: api-server, then the rest
    scripts/airflow.sh up --also "celery worker --queues duckdb --concurrency 1"
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

AFTER_API = ["scheduler", "dag-processor", "triggerer"]
GRACE_S = 12.0


def base_url() -> str:
    if os.environ.get("AIRFLOW__API__BASE_URL"):
        return os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(os.environ["AIRFLOW_CONFIG"])
    url = os.path.expandvars(cfg.get("api", "base_url", fallback="http://localhost:8080"))
    port = os.environ.get("AIRFLOW__API__PORT")
    if port:  # a port given alone: the base URL follows it, or tasks would call the wrong one
        url = f"http://127.0.0.1:{port}"
    return url.rstrip("/")


class Components:
    def __init__(self):
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False
        self.lock = threading.Lock()

    def start(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(["airflow", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True, errors="replace", bufsize=1)
        self.procs[name] = proc
        threading.Thread(target=self._relay, args=(name, proc), daemon=True).start()

    def _relay(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self.lock:
                sys.stdout.write(f"{name:14} | {line}")
                sys.stdout.flush()

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        """TERM every component's process group, then KILL what is left after the grace period."""
        self.stopping = True
        for p in self.procs.values():
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and any(_group_alive(p) for p in self.procs.values()):
            time.sleep(0.2)
        for p in self.procs.values():
            _signal_group(p, signal.SIGKILL)
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(p: subprocess.Popen) -> bool:
    p.poll()  # reap the leader if it has exited
    try:
        os.killpg(p.pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as r:
            return r.status == 200 and "metadatabase" in json.loads(r.read())
    except (OSError, ValueError):
        return False


def password_line() -> str:
    f = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    try:
        pw = json.loads(f.read_text()).get("admin")
    except (OSError, ValueError):
        pw = None
    return f"user admin, password {pw} (kept in {f})" if pw else f"user admin; the password is in {f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="start only these components (default: api-server and "
                                              + ", ".join(AFTER_API) + ")")
    ap.add_argument("--also", action="append", default=[], help="another airflow command to run once the "
                                                                "API answers, e.g. \"celery worker --queues duckdb\"")
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    args = ap.parse_args(argv)
    comps = Components()
    stop_requested = threading.Event()

    def on_signal(signum, frame):
        if stop_requested.is_set():  # a second Ctrl-C: no more patience
            for p in comps.procs.values():
                _signal_group(p, signal.SIGKILL)
        stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    url = base_url()
    wanted = args.only if args.only is not None else ["api-server", *AFTER_API]
    if "api-server" in wanted:
        comps.start("api-server", ["api-server"])
        deadline = time.monotonic() + args.ready_timeout
        while not healthy(url):
            if stop_requested.is_set() or comps.dead() or time.monotonic() > deadline:
                why = ("stopped" if stop_requested.is_set() else f"{', '.join(comps.dead())} exited"
                       if comps.dead() else f"no answer from {url} in {args.ready_timeout:.0f} s")
                print(f"airflow-up     | the API server did not come up ({why}); stopping", flush=True)
                comps.stop()
                return 130 if stop_requested.is_set() else 1
            time.sleep(0.5)
    for name in wanted:
        if name != "api-server":
            comps.start(name, [name])
    for i, extra in enumerate(args.also):
        comps.start(f"extra-{i + 1}", shlex.split(extra))
    print(f"airflow-up     | Airflow is ready: {url} ({password_line()}). Stop it with Ctrl-C.", flush=True)
    while not stop_requested.wait(0.5):
        if comps.dead():
            print(f"airflow-up     | {', '.join(comps.dead())} exited; stopping the rest", flush=True)
            comps.stop()
            return 1
    print("airflow-up     | stopping every component ...", flush=True)
    comps.stop()
    print("airflow-up     | stopped", flush=True)
    return 130


if __name__ == "__main__":
    sys.exit(main())
