"""Shared fixtures. Airflow's environment is set before anything can import airflow."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
LOOPBACK = "127.0.0.0/8,::1/128"

# Fixtures shared across folders: feed servers that misbehave on purpose, loopback settings, an inbox.
pytest_plugins = ["tests.feed_support", "tests.smtp_servers"]


def pytest_configure(config):
    home = ROOT / ".pytest-airflow-home"
    home.mkdir(exist_ok=True)
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW_PROJECT=str(ROOT),
        AIRFLOW_CONFIG=str(ROOT / "airflow.cfg"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/test.db",
    )
    # Tests must not depend on the developer's machine zone.
    os.environ["TZ"] = "America/Los_Angeles"
    # Every feed server in the tests is on loopback, which feeds may not reach by default.
    os.environ["MEDIA_TIMING_FETCH_ALLOW_NETWORKS"] = LOOPBACK


@pytest.fixture
def db_path(tmp_path) -> pathlib.Path:
    return tmp_path / "test.duckdb"


@pytest.fixture
def con(db_path):
    from pipeline.store.database import open_db

    with open_db(db_path) as c:
        yield c


@pytest.fixture
def fresh_ws(db_path, monkeypatch):
    """A Workspace on a new, migrated database that MEDIA_TIMING_DB names (as a user's would)."""
    from pipeline.store.workspace import Workspace

    monkeypatch.setenv("MEDIA_TIMING_DB", str(db_path))
    ws = Workspace.from_environment()
    with ws.ensure():
        pass
    return ws


@pytest.fixture(scope="session")
def case_db_template(tmp_path_factory) -> pathlib.Path:
    """The 2016 case study loaded once per session; tests get a copy."""
    from pipeline.demo import load_case_study
    from pipeline.store.database import open_db

    path = tmp_path_factory.mktemp("case") / "case.duckdb"
    with open_db(path) as c:
        load_case_study(c, say=lambda _: None)
    return path


@pytest.fixture
def case_db(case_db_template, tmp_path) -> pathlib.Path:
    path = tmp_path / "case.duckdb"
    shutil.copy(case_db_template, path)
    return path


@pytest.fixture(scope="session")
def case_runs_template(case_db_template, tmp_path_factory) -> pathlib.Path:
    """The case study with every claim's run stored, as `make demo` leaves it (once per session)."""
    from pipeline.analysis.claims import claim_names, load_claim
    from pipeline.analysis.runs import analyze
    from pipeline.config import load_settings
    from pipeline.store.workspace import Workspace

    path = tmp_path_factory.mktemp("runs") / "runs.duckdb"
    shutil.copy(case_db_template, path)
    ws = Workspace(dataclasses.replace(load_settings(), db_path=path))
    for name in claim_names():
        analyze(ws, load_claim(name))
    return path


@pytest.fixture
def case_runs(case_runs_template, tmp_path):
    """A Workspace on a copy of the case study with every claim's run stored."""
    from pipeline.config import load_settings
    from pipeline.store.workspace import Workspace

    path = tmp_path / "runs.duckdb"
    shutil.copy(case_runs_template, path)
    return Workspace(dataclasses.replace(load_settings(), db_path=path, data_dir=tmp_path / "data"))
