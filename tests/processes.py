"""Helpers for tests that start real servers and processes: free ports, process trees, waiting."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Airflow's components and Celery start workers of their own)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def alive(pids) -> set[int]:
    """The processes of ``pids`` still running (a zombie has exited)."""
    left = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().split(") ")[-1][0] != "Z":
                    left.add(p)
        except OSError:
            pass
    return left


def wait_for(what, check, timeout, every=1.0, proc=None, retry_on=()):
    """``check()``'s first true value within ``timeout`` s; exceptions of ``retry_on`` count as
    not yet; ``proc`` exiting meanwhile fails at once."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"Airflow exited with {proc.returncode} while waiting for {what}")
        try:
            last = check()
            if last:
                return last
        except retry_on as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last})")
