"""REST API of the job gateway: submit, list, get, cancel, logs (under /api/jobs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from aitestbed.portal import models, schemas
from aitestbed.portal.deps import CurrentUser
from aitestbed.portal.jobs.gateway import JobError, JobGateway
from aitestbed.portal.paging import DEFAULT_PAGE, MAX_PAGE, link_next_page


def job_out(job: models.Job) -> schemas.JobOut:
    return schemas.JobOut(
        id=job.id,
        uid=job.uid,
        name=job.name,
        owner=job.owner,
        project=job.project.slug,
        kind=job.kind,
        state=job.state,
        reason=job.reason,
        exit_code=job.exit_code,
        partition=job.partition,
        nodes=job.nodes,
        gpus_per_node=job.gpus_per_node,
        time_limit_minutes=job.time_limit_minutes,
        working_dir=job.working_dir,
        output_path=job.output_path,
        notebook_output=job.notebook_output,
        backend=job.backend,
        backend_job_id=job.backend_job_id,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        gpu_hours_charged=job.gpu_hours_charged,
        datasets=list((job.spec or {}).get("datasets", [])),
    )


async def _gateway(request: Request) -> JobGateway:
    gateway = request.app.state.jobs
    if gateway is None:
        raise JobError(503, "Batch jobs are not configured on this portal.")
    return gateway


Gateway = Annotated[JobGateway, Depends(_gateway)]


async def job_error_handler(_request: Request, error: JobError) -> JSONResponse:
    body = {"detail": error.detail}
    if error.field:
        body["field"] = error.field
        body["detail"] = f"{error.field}: {error.detail}"
    headers = {"Retry-After": "30"} if error.status == 503 else None
    return JSONResponse(body, status_code=error.status, headers=headers)


def jobs_router() -> APIRouter:
    router = APIRouter(prefix="/api/jobs", tags=["jobs"])
    problems = {
        401: {"model": schemas.Problem},
        403: {"model": schemas.JobProblem},
        404: {"model": schemas.Problem},
        503: {"model": schemas.Problem},
    }

    @router.post(
        "",
        response_model=schemas.JobOut,
        status_code=201,
        responses={**problems, 422: {"model": schemas.JobProblem}},
    )
    def submit(
        body: schemas.JobSubmit,
        identity: CurrentUser,
        gateway: Gateway,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> schemas.JobOut:
        """Submit a job. With an idempotency key (header or body), a retry with the same
        body returns the job the first request made (200) instead of making another; the
        same key with a different body is refused (422). A 503 that names a job id means
        the batch system may have received it: retry with the same key to learn its fate."""
        request = body.model_dump(exclude_none=True)
        key = idempotency_key or request.pop("idempotency_key", None)
        request.pop("idempotency_key", None)
        job, created = gateway.submit(identity, request, key)
        if not created:
            response.status_code = 200
        return job_out(job)

    @router.get("", response_model=list[schemas.JobOut], responses=problems)
    def list_jobs(
        request: Request,
        response: Response,
        identity: CurrentUser,
        gateway: Gateway,
        all_users: Annotated[bool, Query(alias="all")] = False,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        before: Annotated[
            int | None, Query(ge=1, description="Jobs with a smaller id only: the next page.")
        ] = None,
    ) -> list[schemas.JobOut]:
        """Your jobs, newest first, a page at a time (the Link header has the next page);
        operators may ask for everyone's with ?all=true."""
        jobs = gateway.list(identity, everyone=all_users, limit=limit, before=before)
        link_next_page(request, response, jobs, limit, before=lambda j: j.id)
        return [job_out(j) for j in jobs]

    @router.get("/{job_id}", response_model=schemas.JobOut, responses=problems)
    def get_job(job_id: int, identity: CurrentUser, gateway: Gateway) -> schemas.JobOut:
        """One of your jobs (as the poller last saw it)."""
        return job_out(gateway.get(identity, job_id))

    @router.post("/{job_id}/cancel", response_model=schemas.JobOut, responses=problems)
    def cancel_job(job_id: int, identity: CurrentUser, gateway: Gateway) -> schemas.JobOut:
        """Ask the backend to stop the job; its state becomes CANCELLED when it has."""
        return job_out(gateway.cancel(identity, job_id))

    @router.get("/{job_id}/logs", response_model=schemas.JobLogs, responses=problems)
    def job_logs(
        job_id: int,
        identity: CurrentUser,
        gateway: Gateway,
        tail_bytes: Annotated[int, Query(ge=1, le=1024 * 1024)] = 65536,
    ) -> schemas.JobLogs:
        """The end of the job's output (stdout and stderr)."""
        return schemas.JobLogs(**gateway.logs(identity, job_id, tail_bytes))

    return router
