"""Every feature's page routes (and the project and usage-record APIs), for ``create_app``."""

from __future__ import annotations

from fastapi import APIRouter

from aitestbed.portal.console import console_pages_router
from aitestbed.portal.courses.pages import courses_pages_router
from aitestbed.portal.datasets.pages import datasets_pages_router
from aitestbed.portal.jobs.pages import jobs_pages_router
from aitestbed.portal.projects.api import projects_api_router
from aitestbed.portal.projects.pages import projects_pages_router
from aitestbed.portal.reports.pages import reports_pages_router


def feature_routers() -> list[APIRouter]:
    return [
        console_pages_router(),
        reports_pages_router(),
        projects_pages_router(),
        projects_api_router(),
        datasets_pages_router(),
        jobs_pages_router(),
        courses_pages_router(),
    ]
