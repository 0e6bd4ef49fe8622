"""The media-timing verdicts inside the Airflow UI: the app of pipeline/outputs/web.py mounted
under /media-timing/, a "Timing" entry in the navigation, and a "Verdict" tab on every DAG run
(it lists the analysis runs an analyze_timing run stored).

Plugin endpoints are not protected by Airflow by default: every route here requires Airflow's
own authentication (the JWT the UI holds in its `_token` cookie, or an `Authorization: Bearer`
token from /auth/token); an anonymous request gets 401, a forged token 403.
"""

from __future__ import annotations

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin

from pipeline.outputs.web import create_app

app = create_app(auth=get_user)


class MediaTimingPlugin(AirflowPlugin):
    name = "media_timing"
    fastapi_apps = [{"app": app, "url_prefix": "/media-timing", "name": "media-timing verdicts"}]
    external_views = [
        {"name": "Timing", "href": "media-timing/", "destination": "nav", "url_route": "timing"},
        {"name": "Verdict", "href": "media-timing/dag-runs/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "verdict"},
    ]
