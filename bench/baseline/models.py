"""The peer's models: ORM tables, pydantic models and the `*Table` helpers Open WebUI routers call.

`FlowExecution` is FLOW_EXECUTION_HISTORY.md's model verbatim (column order included: the
JSON payloads sit before `execution_time`, so reading it for an average walks each row's
payload), with its three indexes. `Flow` and `User` carry what the routes read.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, BigInteger, Column, Index, String, Text, func

from bench.baseline.db import Base, get_db


class User(Base):
    __tablename__ = "user"

    id = Column(String, primary_key=True)
    role = Column(String)


class Flow(Base):
    __tablename__ = "flow"

    id = Column(Text, primary_key=True)
    user_id = Column(Text)
    name = Column(Text)
    nodes = Column(JSON)
    edges = Column(JSON)
    access_control = Column(JSON, nullable=True)
    created_at = Column(BigInteger)
    updated_at = Column(BigInteger)


class FlowExecution(Base):
    __tablename__ = "flow_execution"

    id = Column(String, primary_key=True)
    flow_id = Column(String)
    user_id = Column(String)

    status = Column(String)  # success, error, aborted
    inputs = Column(JSON, nullable=True)
    outputs = Column(JSON, nullable=True)
    node_results = Column(JSON, nullable=True)
    errors = Column(JSON, nullable=True)

    execution_time = Column(BigInteger)  # milliseconds
    created_at = Column(BigInteger)  # Unix timestamp

    meta = Column(JSON, server_default="{}")

    __table_args__ = (
        Index("flow_execution_flow_id_created_at_idx", "flow_id", "created_at"),
        Index("flow_execution_user_id_created_at_idx", "user_id", "created_at"),
        Index("flow_execution_flow_id_status_idx", "flow_id", "status"),
    )


class UserModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    role: str = "pending"


class FlowModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    user_id: str
    name: str
    nodes: list
    edges: list
    access_control: dict | None = None
    created_at: int
    updated_at: int


class FlowExecutionModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    flow_id: str
    user_id: str
    status: str
    inputs: dict | None = None
    outputs: dict | None = None
    node_results: dict | None = None
    errors: dict | None = None
    execution_time: int
    created_at: int  # epoch seconds
    meta: dict | None = {}


class FlowExecutionForm(BaseModel):
    flow_id: str
    status: str
    inputs: dict | None = None
    outputs: dict | None = None
    node_results: dict | None = None
    errors: dict | None = None
    execution_time: int


class FlowExecutionSummary(BaseModel):
    id: str
    flow_id: str
    status: str
    execution_time: int
    created_at: int


class FlowExecutionStats(BaseModel):
    total_executions: int
    success_count: int
    error_count: int
    aborted_count: int
    avg_execution_time: float
    last_execution_at: int | None = None


class UsersTable:
    def get_user_by_id(self, id: str) -> UserModel | None:
        try:
            with get_db() as db:
                user = db.query(User).filter_by(id=id).first()
                return UserModel.model_validate(user)
        except Exception:
            return None


class FlowsTable:
    def get_flow_by_id(self, id: str) -> FlowModel | None:
        try:
            with get_db() as db:
                flow = db.get(Flow, id)
                return FlowModel.model_validate(flow) if flow else None
        except Exception:
            return None


class FlowExecutionsTable:
    def insert_new_execution(self, user_id: str, form_data: FlowExecutionForm) -> FlowExecutionModel | None:
        with get_db() as db:
            execution = FlowExecutionModel(
                **{
                    **form_data.model_dump(),
                    "id": str(uuid.uuid4()),
                    "user_id": user_id,
                    "created_at": int(time.time()),
                    "meta": {},
                }
            )
            result = FlowExecution(**execution.model_dump())
            db.add(result)
            db.commit()
            db.refresh(result)
            return FlowExecutionModel.model_validate(result) if result else None

    def get_executions_by_flow_id(
        self, flow_id: str, skip: int = 0, limit: int = 60
    ) -> list[FlowExecutionModel]:
        with get_db() as db:
            executions = (
                db.query(FlowExecution)
                .filter_by(flow_id=flow_id)
                .order_by(FlowExecution.created_at.desc())
                .offset(skip)
                .limit(limit)
                .all()
            )
            return [FlowExecutionModel.model_validate(e) for e in executions]

    def get_execution_by_id(self, id: str) -> FlowExecutionModel | None:
        try:
            with get_db() as db:
                execution = db.query(FlowExecution).filter_by(id=id).first()
                return FlowExecutionModel.model_validate(execution) if execution else None
        except Exception:
            return None

    def get_execution_stats_by_flow_id(self, flow_id: str) -> dict[str, Any]:
        """Six queries, as the peer does (not one snapshot: a peer bug, kept)."""
        with get_db() as db:
            total = db.query(FlowExecution).filter_by(flow_id=flow_id).count()
            success = db.query(FlowExecution).filter_by(flow_id=flow_id, status="success").count()
            error = db.query(FlowExecution).filter_by(flow_id=flow_id, status="error").count()
            aborted = db.query(FlowExecution).filter_by(flow_id=flow_id, status="aborted").count()
            avg_time = db.query(func.avg(FlowExecution.execution_time)).filter_by(flow_id=flow_id).scalar()
            last = db.query(func.max(FlowExecution.created_at)).filter_by(flow_id=flow_id).scalar()
            return {
                "total_executions": total,
                "success_count": success,
                "error_count": error,
                "aborted_count": aborted,
                "avg_execution_time": float(avg_time) if avg_time else 0.0,
                "last_execution_at": last,
            }

    def delete_execution_by_id(self, id: str) -> bool:
        try:
            with get_db() as db:
                db.query(FlowExecution).filter_by(id=id).delete()
                db.commit()
                return True
        except Exception:
            return False

    def delete_executions_by_flow_id(self, flow_id: str) -> bool:
        try:
            with get_db() as db:
                db.query(FlowExecution).filter_by(flow_id=flow_id).delete()
                db.commit()
                return True
        except Exception:
            return False


Users = UsersTable()
Flows = FlowsTable()
FlowExecutions = FlowExecutionsTable()
