"""The test Open WebUI databases themselves: both dialects hold and answer the same rows."""

from __future__ import annotations

from tests.openwebui.webui_db import WebUIDb


def test_rows_round_trip(webui_db: WebUIDb) -> None:
    webui_db.add_user("alice", "admin", api_key="sk-" + "a" * 32)
    webui_db.add_group("g1", ["alice"])
    fid = webui_db.add_flow("alice", nodes=[{"id": "n1"}], access_control={})
    webui_db.add_execution(fid, "alice", status="error", errors={"global": "boom"}, created_at=1_700_000_000)
    assert webui_db.execute('SELECT id, role, api_key FROM "user"') == [("alice", "admin", "sk-" + "a" * 32)]
    assert [r[0] for r in webui_db.execute("SELECT id FROM flow")] == [fid]
    rows = webui_db.execute("SELECT status, created_at FROM flow_execution")
    assert rows == [("error", 1_700_000_000)]
    webui_db.delete_flow(fid)
    assert webui_db.execute("SELECT count(*) FROM flow") == [(0,)]
