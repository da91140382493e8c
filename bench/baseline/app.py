"""The peer's HTTP side, as Open WebUI writes it: `utils/auth.py` dependencies and the
execution routes of `routers/flows.py`, mounted at `/api/v1/flows`.

Per request: the bearer JWT is decoded (HS256, `id` claim, WEBUI_SECRET_KEY) and the user is
looked up (one session, one query) in a sync dependency, which FastAPI runs in its thread
pool; the route is `async def` and calls the sync ORM helpers directly, as Open WebUI's
routers do; it looks the flow up (one session, one query), checks access, then does the work
(its own session). Open WebUI also queues a `last_active_at` update per request; that write
is left out here, which only flatters the baseline.

    BASELINE_DB=bench/out/b.sqlite WEBUI_SECRET_KEY=s \
        python -m uvicorn bench.baseline.app:app --host 127.0.0.1 --port 8081 --workers 1
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jwt
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bench.baseline.analytics import FlowAnalytics, SearchForm
from bench.baseline.db import Base, engine, get_db
from bench.baseline.models import (
    Flow,
    FlowExecutionForm,
    FlowExecutionModel,
    FlowExecutions,
    FlowExecutionStats,
    FlowExecutionSummary,
    Flows,
    UserModel,
    Users,
)

SESSION_SECRET = os.environ.get("WEBUI_SECRET_KEY", "t0p-s3cr3t")
ALGORITHM = "HS256"
NOT_FOUND = "We could not find what you're looking for :/"
ACCESS_PROHIBITED = (
    "You do not have permission to access this resource. Please contact your administrator for assistance."
)
INVALID_TOKEN = "Your session has expired or the token is invalid. Please sign in again."

bearer_security = HTTPBearer(auto_error=False)


def decode_token(token: str) -> dict | None:
    try:
        return jwt.decode(token, SESSION_SECRET, algorithms=[ALGORITHM])
    except Exception:
        return None


def get_current_user(
    request: Request, auth_token: HTTPAuthorizationCredentials | None = Depends(bearer_security)
) -> UserModel:
    token = None
    if auth_token is not None:
        token = auth_token.credentials
    if token is None and "token" in request.cookies:
        token = request.cookies.get("token")
    if token is None:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Not authenticated")
    data = decode_token(token)
    if data is not None and "id" in data:
        user = Users.get_user_by_id(data["id"])
        if user is None:
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=INVALID_TOKEN)
        return user
    raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="401 Unauthorized")


def get_verified_user(user: UserModel = Depends(get_current_user)) -> UserModel:
    if user.role not in {"user", "admin"}:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=ACCESS_PROHIBITED)
    return user


def has_access(user_id: str, type: str = "write", access_control: dict | None = None) -> bool:
    if access_control is None:
        return type == "read"
    permitted = access_control.get(type, {})
    return user_id in permitted.get("user_ids", [])  # no groups in this re-creation


def _flow_for(id: str, user: UserModel, type: str = "read"):  # type: ignore[no-untyped-def]
    flow = Flows.get_flow_by_id(id)
    if not flow:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    if (
        user.role != "admin"
        and flow.user_id != user.id
        and not has_access(user.id, type, flow.access_control)
    ):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=ACCESS_PROHIBITED)
    return flow


router = APIRouter()


@router.post("/{id}/executions", response_model=FlowExecutionModel | None)
async def save_flow_execution(id: str, form_data: FlowExecutionForm, user=Depends(get_verified_user)):
    _flow_for(id, user, "read")
    execution = FlowExecutions.insert_new_execution(user.id, form_data)  # peer bug: body flow_id
    if execution:
        return execution
    raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail="Error saving execution")


@router.get("/{id}/executions", response_model=list[FlowExecutionSummary])
async def get_flow_executions(id: str, page: int | None = 1, user=Depends(get_verified_user)):
    _flow_for(id, user, "read")
    limit = 60
    skip = (page - 1) * limit
    executions = FlowExecutions.get_executions_by_flow_id(id, skip=skip, limit=limit)
    return [
        FlowExecutionSummary(
            id=e.id,
            flow_id=e.flow_id,
            status=e.status,
            execution_time=e.execution_time,
            created_at=e.created_at,
        )
        for e in executions
    ]


@router.get("/{id}/executions/stats", response_model=FlowExecutionStats)
async def get_flow_execution_stats(id: str, user=Depends(get_verified_user)):
    _flow_for(id, user, "read")
    return FlowExecutions.get_execution_stats_by_flow_id(id)


@router.get("/{id}/trend")
async def get_flow_trend(
    id: str, start: int, end: int, bucket: str = "day", measures: str = "", user=Depends(get_verified_user)
):
    """Daily runs, failure rate and p50/p95 duration (bench/baseline/analytics.py); `measures` is
    accepted for the same query string as flowhistory's and ignored: all four are returned."""
    _flow_for(id, user, "read")
    if bucket != "day" or end <= start or end - start > 366 * 86400:
        raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail="Invalid range")
    return {"bucket": "day", "rows": FlowAnalytics.get_daily_trend(id, start, end)}


@router.get("/{id}/nodes")
async def get_flow_node_breakdown(id: str, user=Depends(get_verified_user)):
    _flow_for(id, user, "read")
    return FlowAnalytics.get_node_breakdown(id)


@router.get("/{id}/executions/{execution_id}", response_model=FlowExecutionModel | None)
async def get_flow_execution_by_id(id: str, execution_id: str, user=Depends(get_verified_user)):
    _flow_for(id, user, "read")
    execution = FlowExecutions.get_execution_by_id(execution_id)
    if not execution:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Execution not found")
    if execution.flow_id != id:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Execution not found for this flow")
    return execution


@router.delete("/{id}/executions/{execution_id}", response_model=bool)
async def delete_flow_execution(id: str, execution_id: str, user=Depends(get_verified_user)):
    _flow_for(id, user, "write")
    execution = FlowExecutions.get_execution_by_id(execution_id)
    if not execution:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Execution not found")
    if execution.flow_id != id:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Execution not found for this flow")
    return FlowExecutions.delete_execution_by_id(execution_id)


@router.delete("/{id}/executions", response_model=bool)
async def delete_all_flow_executions(id: str, user=Depends(get_verified_user)):
    _flow_for(id, user, "write")
    return FlowExecutions.delete_executions_by_flow_id(id)


executions_router = APIRouter()


@executions_router.post("/search")
async def search_executions(form_data: SearchForm, user=Depends(get_verified_user)):
    if form_data.flow_id is not None:
        _flow_for(form_data.flow_id, user, "read")
    flow_ids = None
    if user.role != "admin":
        with get_db() as db:
            flows = db.query(Flow.id, Flow.user_id, Flow.access_control).all()
        flow_ids = [
            f.id for f in flows if f.user_id == user.id or has_access(user.id, "read", f.access_control)
        ]
    return FlowAnalytics.search_executions(form_data, flow_ids)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    Base.metadata.create_all(bind=engine)  # stands in for the peer's alembic migration
    yield


app = FastAPI(lifespan=lifespan)
app.include_router(router, prefix="/api/v1/flows", tags=["flows"])
app.include_router(executions_router, prefix="/api/v1/executions", tags=["executions"])


@app.get("/health")
async def healthcheck():
    return {"status": True}
