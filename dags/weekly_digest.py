"""
### Email the weekly digest

Mondays 07:00 UTC (or by hand, for any `week`): compose the digest of the ISO week that just ended (releases, the
announcements around them with signed gaps, p-values with their null, plain-language verdicts,
charts, collection health) and send it through the Airflow SMTP connection `smtp_default` to
the addresses in the Variable `media_timing_digest_to` (comma-separated; else the
MEDIA_TIMING_DIGEST_TO environment variable). With no recipients it only writes the preview.

**Writes**: `deliveries` (one row per week and recipient list: a week is sent once, however
often this runs) and the HTML preview in `data/reports/`. It runs no analysis: the figures are
the stored runs `analyze_timing` made. If the SMTP server is down the failure is recorded and
the task retries with exponential backoff; it sends once when the server is back. A message the
server took without answering is marked `unknown` and the task fails rather than resend it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    BaseHook,
    CronTriggerTimetable,
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    Variable,
    dag,
    task,
)
from media_timing_common import DEFAULT_ARGS, START, WRITER_POOL, WRITER_RETRY

SEND_RETRY = ExceptionRetryPolicy(rules=[
    RetryRule(exception="pipeline.outputs.mailer.DigestNotSent", action=RetryAction.RETRY,
              retry_delay=timedelta(minutes=10), reason="the SMTP server refused or was down"),
    *WRITER_RETRY.rules,
])


@dag(
    schedule=CronTriggerTimetable("0 7 * * 1", timezone="UTC"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 6, "retry_delay": timedelta(minutes=5)},
    tags=["media-timing", "publish"],
    doc_md=__doc__,
    params={
        "week": Param(None, type=["null", "string"], pattern=r"^(|\d{4}-W\d{2})$", title="ISO week (optional)",
                      description="e.g. 2016-W40. Empty: the last complete week before the run"),
    },
)
def weekly_digest():
    @task(pool=WRITER_POOL, retry_policy=SEND_RETRY)
    def send(dag_run=None, params=None) -> dict:
        """Compose last week's digest from the stored runs and send it (once)."""
        from pipeline import jobs
        from pipeline.config import load_settings, smtp_from_connection

        recipients = [a for a in Variable.get("media_timing_digest_to", default="").split(",") if a.strip()]
        smtp = None
        try:
            conn = BaseHook.get_connection("smtp_default")
        except Exception as exc:  # not configured: use the pipeline's MEDIA_TIMING_SMTP_* settings
            print(f"no usable smtp_default connection ({exc}); using MEDIA_TIMING_SMTP_* settings")
        else:
            smtp = smtp_from_connection(host=conn.host, port=conn.port, login=conn.login,
                                        password=conn.password, extra=conn.extra_dejson,
                                        fallback=load_settings().smtp)
        result = jobs.weekly_digest(params["week"] or None, now=dag_run.run_after,
                                    recipients=recipients or None, smtp=smtp)
        print(result)
        return result

    send()


weekly_digest()
