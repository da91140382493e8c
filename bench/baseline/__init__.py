"""The peer, re-created from PEER_CONTRACT.md and FLOW_EXECUTION_HISTORY.md: Open WebUI's
pattern (FastAPI + SQLAlchemy ORM + SQLite in WAL mode), bugs included, fixes excluded."""
