"""Settings from the environment (prefix ``BANKWALLET_``) and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/bankwallet.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANKWALLET_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # Test each pooled PostgreSQL connection before use. Off by default: the test costs three
    # round trips per checkout (a dozen or more per money-moving request). Without it, a
    # connection the server dropped fails the one request that draws it, the pool is then
    # refreshed, and a retry with the same Idempotency-Key is safe. Connections are recycled
    # after 30 minutes either way.
    database_pre_ping: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    default_locale: Literal["en", "zh_CN"] = "zh_CN"

    # The ledger's batcher: bounded batch size and how long it waits for more work.
    ledger_batch_max: int = Field(default=4096, ge=1, le=8190)
    ledger_batch_wait_ms: float = Field(default=0.0, ge=0, le=50)
    # PostgreSQL: batches in flight at once (decided while the one before commits).
    ledger_pipeline: int = Field(default=2, ge=1, le=4)
    ledger_expiry_interval_s: float = Field(default=1.0, gt=0)
    # PostgreSQL: POST /api/v1/transfers takes the fast path (transfers/fast.py) when it can.
    p2p_fast_path: bool = True

    # Bearer token for the operator API (/api/v1/ledger); unset disables that API.
    ops_token: str | None = None

    # Envelope-encryption keys: a key file (JSON) or the same JSON inline. Dev and test make
    # ./var/keys.json when neither is set; production refuses to start without keys.
    # Key material never leaves these fields: SecretStr keeps it out of reprs and logs.
    key_file: Path | None = None
    keys_json: SecretStr | None = None

    @field_validator("key_file", "keys_json", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `BANKWALLET_KEY_FILE=` in a compose file means "not set", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    # Identity: sessions, one-time codes, throttling.
    session_idle_timeout_s: int = Field(default=1800, ge=60)
    session_absolute_timeout_s: int = Field(default=12 * 3600, ge=300)
    api_session_absolute_timeout_s: int = Field(default=30 * 24 * 3600, ge=300)
    otp_ttl_s: int = Field(default=300, ge=30, le=3600)
    otp_max_attempts: int = Field(default=5, ge=1, le=20)
    login_free_failures: int = Field(default=5, ge=1, le=100)
    ip_max_failures: int = Field(default=50, ge=5)
    default_phone_region: str = "CN"
    # Daily limits reset at midnight here.
    bank_timezone: str = "Asia/Shanghai"
    # Passkeys (WebAuthn): the relying party id is the site's domain ("wallet.example.com")
    # and the origins are where the client runs ("https://wallet.example.com"). Unset in dev
    # and test, both come from the request's Host; production must set them.
    webauthn_rp_id: str | None = None
    webauthn_origins: list[str] = Field(default_factory=list)
    webauthn_rp_name: str = "bankwallet"

    # Outbox: how often an idle dispatcher polls, and how often an event is tried.
    outbox_interval_s: float = Field(default=0.5, gt=0, le=60)
    outbox_max_attempts: int = Field(default=10, ge=1, le=50)

    # Notifications: "dev" stores messages (sealed) for the development inbox at /dev/inbox.
    email_backend: Literal["smtp", "dev"] = "dev"
    sms_backend: Literal["dev"] = "dev"  # a real SMS provider adds its name here
    email_from: str = "bankwallet <no-reply@bankwallet.localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True  # upgrade with STARTTLS (port 587); required when True
    smtp_tls: bool = False  # implicit TLS (port 465) instead
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=60)

    # Card gateway: the card processor's API (the sandbox: `bankwallet sandbox-gateway`) and
    # the secret its webhooks are signed with. Unset: card payments are not connected.
    gateway_url: str | None = None
    gateway_secret: SecretStr | None = None

    # `bankwallet bench http` only: mounts POST /bench/transfer-echo (no auth, no database).
    bench_endpoints: bool = False

    # Request bodies above this are refused before parsing.
    max_body_bytes: int = 1_048_576

    # Core banking: the bank behind top-ups and withdrawals (funding). Without a URL the
    # funding pages say the bank is not connected. The secret verifies the bank's webhooks
    # (pass "new,old" while the bank rotates it). Pending instructions older than
    # corebanking_poll_after_s are asked about every corebanking_poll_interval_s.
    # corebanking_sandbox_delay_s is sent to the sandbox bank only (its timed failure modes).
    corebanking_provider: Literal["sandbox"] = "sandbox"
    corebanking_url: str | None = None
    corebanking_secret: SecretStr | None = None
    corebanking_timeout_s: float = Field(default=10.0, gt=0, le=60)
    corebanking_webhook_tolerance_s: int = Field(default=300, ge=1, le=3600)
    corebanking_poll_interval_s: float = Field(default=5.0, gt=0, le=300)
    corebanking_poll_after_s: float = Field(default=60.0, ge=0, le=86400)
    corebanking_sandbox_delay_s: float | None = Field(default=None, ge=0, le=120)

    @field_validator("corebanking_url", "corebanking_secret", mode="before")
    @classmethod
    def _empty_corebanking_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # Chains (the self-custody crypto wallet). A node URL per chain: JSON-RPC for the EVM
    # chains, BTC (Bitcoin Core, credentials in the URL) and SOL, the full-node HTTP API for
    # TRON, e.g. {"ETH": "https://...", "BTC": "http://user:pass@host:8332"}: a chain without
    # one shows "no network" instead of balances and cannot broadcast. A
    # test network's EIP-155 chain id (the sandbox chain: 1337) goes in chain_network_ids;
    # APT (fullnode REST) and EOS (chain API) take a node for balances too.
    # chain_tokens lists the tokens shown per chain (ERC-20; TRON: TRC-20, SOL: SPL mints):
    # {"ETH": [{"address": "0x...", "symbol": "USDT", "decimals": 6}]}.
    chain_networks: dict[str, str] = Field(default_factory=dict)
    chain_network_ids: dict[str, int] = Field(default_factory=dict)
    chain_tokens: dict[str, list[dict[str, str | int]]] = Field(default_factory=dict)
    chain_rpc_timeout_s: float = Field(default=10.0, gt=0, le=60)
    chain_confirmations: int = Field(default=1, ge=1, le=100)
    chain_track_interval_s: float = Field(default=2.0, gt=0, le=300)
    # Wrong wallet PINs per user before a lock-out, and the first lock-out (it doubles).
    chain_pin_max_failures: int = Field(default=5, ge=1, le=20)
    chain_pin_lockout_s: int = Field(default=900, ge=1, le=86400)
    # Argon2id cost of sealing a wallet under its PIN (RFC 9106: 64 MiB, 3 passes, 4 lanes).
    # Wallets sealed with less are re-sealed at their next right PIN.
    chain_pin_kdf_memory_kib: int = Field(default=64 * 1024, ge=32, le=1024 * 1024)
    chain_pin_kdf_time_cost: int = Field(default=3, ge=1, le=10)


@lru_cache
def get_settings() -> Settings:
    return Settings()
