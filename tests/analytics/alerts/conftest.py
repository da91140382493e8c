"""Alert tests deliver to real receivers on 127.0.0.1: the admin allows loopback, as a deployment
with a local receiver would (webhooks reach only public addresses otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.core.config import Settings
from tests.factories import SECRET

LOOPBACK = ["127.0.0.1"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        db_path=tmp_path / "store.duckdb", webui_secret_key=SECRET, port=0, alert_webhook_allow=LOOPBACK
    )
