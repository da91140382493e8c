"""Settings from the environment (prefix FLOWHISTORY_), shared by the server, CLI and notebooks."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWHISTORY_", extra="ignore")

    db_path: Path = Path("data/flowhistory.duckdb")
    host: str = "127.0.0.1"
    port: int = 8080
    # Open WebUI signs its JWTs with this; unset means a random one kept beside the store.
    webui_secret_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WEBUI_SECRET_KEY", "FLOWHISTORY_WEBUI_SECRET_KEY"),
    )
    auto_create_users: bool = True
    admin_user_ids: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    page_size: int = Field(default=60, ge=1)
    list_limit_default: int = Field(default=50, ge=1)
    list_limit_max: int = Field(default=500, ge=1)
    batch_max_items: int = Field(default=100_000, ge=1)
    # DuckDB checkpoints the WAL into the file past this size; larger means faster ingest.
    checkpoint_threshold: str = "256MB"
    # an empty price table starts from data/prices.json
    seed_prices: bool = True
    memory_limit: str | None = None
    threads: int | None = None
    # the server's scheduler (exports, compaction, retention, alerts); off: jobs run on demand only
    scheduler_enabled: bool = True

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin_api_key"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / ".webui_secret_key"

    @property
    def jobs_status_file(self) -> Path:
        return self.data_dir / "jobs.json"
