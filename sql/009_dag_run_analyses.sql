-- 009 which analysis runs each Airflow DAG run stored or found already stored, so the Airflow
-- UI's "Verdict" tab on an analyze_timing run can open them (pipeline/outputs/web.py).
CREATE TABLE dag_run_analyses (
    dag_id        VARCHAR NOT NULL,
    dag_run_id    VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    claim_id      VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,   -- stored (new) or unchanged (already stored)
    recorded_utc  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dag_id, dag_run_id, run_id)
);
