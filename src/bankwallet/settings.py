"""Settings from the environment (prefix ``BANKWALLET_``) and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/bankwallet.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANKWALLET_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1, le=200)
    log_level: str = "INFO"
    log_json: bool = True
    default_locale: Literal["en", "zh_CN"] = "zh_CN"
    default_currency: str = "CNY"

    # The ledger's batcher: bounded batch size and how long it waits for more work.
    ledger_batch_max: int = Field(default=4096, ge=1, le=8190)
    ledger_batch_wait_ms: float = Field(default=0.0, ge=0, le=50)
    # PostgreSQL: batches in flight at once (decided while the one before commits).
    ledger_pipeline: int = Field(default=2, ge=1, le=4)
    ledger_expiry_interval_s: float = Field(default=1.0, gt=0)

    # Bearer token for the operator API (/api/v1/ledger); unset disables that API.
    ops_token: str | None = None

    # Request bodies above this are refused before parsing.
    max_body_bytes: int = 1_048_576

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[1]
        return None if path in ("", ":memory:") else Path(path)


@lru_cache
def get_settings() -> Settings:
    return Settings()
