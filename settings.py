"""The one settings object. Nothing else in the project reads ``os.environ``.

Every variable carries the ``GATEWAY_`` prefix. ``load_settings()`` turns a missing or
malformed value into one clear line (``ConfigurationError``) instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from public_tier_settings import PublicTierPolicy, default_public_tiers

CommaList = Annotated[list[str], NoDecode]
# Tokens everyone knows (the local stack prints them): refused unless GATEWAY_LOCAL_STACK is set.
WELL_KNOWN_TOKENS = frozenset({"local-worker-token", "local-admin-token"})
MIN_TOKEN_CHARS = 16
# Settings whose value is a secret, or may hold one (a URL with a password).
_SECRET_FIELDS = ("token", "secret", "password")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
VISIBILITY_MARGIN_S = 60
# scheme://host[:port], no path: what a browser sends as Origin.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?$")


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message is one line naming the variable."""


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    # --- servers -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    # API processes behind the one port (uvicorn workers); more than one needs a shared
    # metrics folder, made for the run when PROMETHEUS_MULTIPROC_DIR is not set.
    api_workers: int = Field(default=1, ge=1, le=64)
    # Proxies whose X-Forwarded-For names the client (anonymous rate limits count by client IP):
    # a comma list of addresses or networks. Never "*": every client could name itself.
    trusted_proxies: str = "127.0.0.1"
    postgres_url: str | None = None
    redis_url: str | None = None
    # Rate-limit buckets and daily quotas; unset: GATEWAY_REDIS_URL. A separate Redis keeps
    # per-client keys out of the one that is also the broker (noeviction).
    rate_limit_redis_url: str | None = None
    broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to the Redis URL. amqp:// works too."
    )

    # --- auth ----------------------------------------------------------------------------
    worker_tokens: CommaList = Field(default_factory=list)
    admin_tokens: CommaList = Field(default_factory=list)
    # Set only by the local stack (make run): allows its well-known and short tokens.
    local_stack: bool = False
    # The CLI's API mode, for operators without database credentials: commands call the
    # admin API at this address with this token instead of opening the database.
    api_url: str | None = None
    admin_token: str | None = None

    # --- storage -------------------------------------------------------------------------
    raw_storage_path: Path = Path(".local/raw")
    local_data_dir: Path = Path(".local")
    # Port of the embedded Redis that the local stack starts when GATEWAY_REDIS_URL is unset.
    local_redis_port: int = Field(default=16379, ge=1024, le=65535)
    # Parcel ids the local stack's demo queues on its first run (shared/ beside the repo).
    local_demo_ids: Path = (
        Path(__file__).resolve().parent.parent / "shared/data/fl_dixie_parcel_ids.txt"
    )

    # --- celery --------------------------------------------------------------------------
    # Must exceed the longest task (task_time_limit_s) or Redis redelivers running tasks.
    visibility_timeout_s: int = Field(default=3600, ge=60)
    task_time_limit_s: int = Field(default=900, ge=10)
    worker_concurrency: int = Field(default=2, ge=1)

    # --- leases and retries --------------------------------------------------------------
    lease_timeout_s: int = Field(default=300, ge=5)
    heartbeat_stale_s: int = Field(default=300, ge=5)
    retry_backoff_base_s: int = Field(default=30, ge=0)
    max_retries: int = Field(default=3, ge=0)

    # --- dispatch (issue 3: ledger, leasing, periodic dispatch jobs) ----------------------
    # How long a Celery run holds its task without a renewal before the reaper counts it as
    # lost. The node's main process renews the leases of the runs it has active every
    # celery_run_lease_renew_s (unset: a third of the lease), so a run lost with its node, its
    # pool child or to a Celery termination is reaped within about one lease.
    celery_run_lease_s: int = Field(default=60, ge=1)
    celery_run_lease_renew_s: float | None = Field(default=None, gt=0)
    # How long a returned run waits for the ingest of its result before it counts as lost
    # (unset: the task time limit plus a minute, as long as a whole run may take).
    celery_run_handoff_lease_s: int | None = Field(default=None, ge=1)
    # Waiting long polls do not poll the broker: a wake-up announced on the cache Redis when
    # work is published wakes them. This safety poll (the oldest waiter of each platform per
    # API process looks) finds work whose announcement was lost.
    work_safety_poll_s: float = Field(default=5.0, gt=0, le=60)
    work_retry_after_s: int = Field(default=5, ge=0)
    # Queued rows older than this whose message is missing from the queue are re-published.
    vanished_grace_s: int = Field(default=120, ge=1)
    unpublished_grace_s: int = Field(default=30, ge=0)
    redrive_rate_per_s: float = Field(default=10.0, gt=0)
    dispatch_job_interval_s: float = Field(default=10.0, gt=0)
    # Politeness (rate_limits table): processes re-read the limits at most this often, so a
    # change reaches every worker within it without a restart.
    rate_limit_refresh_s: float = Field(default=2.0, ge=0, le=60)
    # A rate_limited/blocked report halves the scope's rate for this long; each further
    # cool-down without a report doubles it back, up to the configured rate.
    rate_limit_cooldown_s: float = Field(default=300.0, gt=0, le=86_400)
    # The demo scraper's pretend page-load time (tests use it to kill a worker mid-task).
    demo_scrape_delay_s: float = Field(default=0.0, ge=0)

    # --- operations ----------------------------------------------------------------------
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_user: str = "operator"
    flower_password: str = "operator"
    log_level: str = "INFO"
    # Unset: human-readable lines when stderr is a terminal, JSON lines otherwise.
    log_json: bool | None = None

    # --- request bodies: capped before they are read (results and raw files below) --------
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # Admin batches (enqueue up to 10,000 tasks, re-drive 10,000 ids) need more.
    admin_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    # --- results ingestion and raw files (issue 4) -----------------------------------------
    ingest_chunk_size: int = Field(default=1000, ge=1, le=10_000)
    results_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    results_max_wait_s: float = Field(default=60.0, ge=0)
    # Without Prefer: respond-async, the answer waits this long for the ingest outcome (the
    # original's 200 {inserted, updated, failed, errors}); past it, 202 with what is known.
    results_sync_wait_s: float = Field(default=10.0, ge=0)
    # Items per POST /internal/results (413 beyond), and item errors listed in one answer.
    results_max_items: int = Field(default=5000, ge=1, le=100_000)
    results_max_errors: int = Field(default=100, ge=1, le=10_000)
    # The ingest worker writes the result messages it holds as one chunk: flushed when this
    # many items are held, or when the oldest has waited ingest_batch_max_wait_s.
    ingest_batch_max_items: int = Field(default=1000, ge=1, le=10_000)
    ingest_batch_max_wait_s: float = Field(default=0.2, gt=0, le=10)
    # Transient failures (races, lock or statement timeouts) of one chunk: retried with
    # jittered backoff from ingest_retry_base_s up to ingest_retry_max_s, at most
    # ingest_max_attempts tries; then its items go to ingest_rejects with the reason.
    ingest_max_attempts: int = Field(default=5, ge=1, le=100)
    ingest_retry_base_s: float = Field(default=0.5, gt=0)
    ingest_retry_max_s: float = Field(default=30.0, gt=0)
    # A database outage is waited out without counting against the items: each try waits up
    # to this long, then the messages are held (unacknowledged) and tried again.
    ingest_outage_wait_s: float = Field(default=60.0, gt=0)
    ingest_lock_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # A message whose chunk killed its worker child (or hit the time limit) this many times
    # is recorded in ingest_rejects instead of being tried again.
    ingest_max_crashes: int = Field(default=3, ge=1, le=100)
    # Accepted results are kept in the result_outbox table until the ingest writes them; a
    # message still there after this long is taken as lost by the broker and sent again. It
    # must exceed the ingest's normal latency, outage waits included (a message only slow is
    # then written twice, harmlessly, but twice the work), hence above ingest_outage_wait_s.
    result_outbox_grace_s: int = Field(default=300, ge=1)
    # Messages re-published per run of the job (every dispatch_job_interval_s).
    result_outbox_republish_limit: int = Field(default=500, ge=1, le=10_000)
    raw_file_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    raw_file_content_types: CommaList = Field(
        default_factory=lambda: [
            "text/html",
            "application/xhtml+xml",
            "application/json",
            "text/plain",
            "text/xml",
            "application/xml",
            "text/csv",
            "application/pdf",
        ]
    )

    @field_validator("raw_file_content_types", mode="before")
    @classmethod
    def _split_content_types(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().lower() for item in value.split(",") if item.strip()]
        return value

    # --- public API /v1 (issue 5) ---------------------------------------------------------
    # JSON in GATEWAY_PUBLIC_TIERS replaces the whole table; "anonymous" (no key) is required.
    public_tiers: dict[str, PublicTierPolicy] = Field(default_factory=default_public_tiers)
    # A runaway search is cancelled rather than allowed to hold a connection; it is also the
    # time budget of every statement on the public pool.
    public_search_timeout_ms: int = Field(default=3000, ge=100)
    # /v1 requests in progress at once per API process (each may hold one connection of the
    # public pool, which has this many); more wait up to the admission timeout, then 503.
    # Worker and operator routes have their own pool and are never queued behind them.
    public_max_concurrency: int = Field(default=5, ge=1, le=100)
    public_admission_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # /metrics reads the ledger at most this often; scrapes in between get the same figures.
    metrics_cache_s: float = Field(default=5.0, ge=0, le=300)
    # /health/ready probes the servers at most this often (each probe opens connections).
    readiness_cache_s: float = Field(default=2.0, ge=0, le=300)
    # Signs search cursors (HMAC). Unset: a random secret per process, so cursors work only
    # against the process that made them; set it when running several API processes.
    cursor_secret: str | None = Field(default=None, min_length=16)
    # last_used_at of an API key is written at most this often (not on every request).
    public_key_touch_interval_s: int = Field(default=60, ge=1)
    # Browser origins allowed to call the API (CORS), e.g. "https://app.taxlien.online";
    # a comma list, none by default.
    public_cors_origins: CommaList = Field(default_factory=list)

    @field_validator("worker_tokens", "admin_tokens", "public_cors_origins", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("public_cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return [origin.rstrip("/") for origin in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        parse_trusted_proxies(value)
        return value

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IpNetwork, ...]:
        return parse_trusted_proxies(self.trusted_proxies)

    @model_validator(mode="after")
    def _check_tokens(self) -> GatewaySettings:
        if self.local_stack:
            return self
        for name, tokens in (("WORKER", self.worker_tokens), ("ADMIN", self.admin_tokens)):
            for token in tokens:
                if token in WELL_KNOWN_TOKENS or len(token) < MIN_TOKEN_CHARS:
                    raise ValueError(
                        f"GATEWAY_{name}_TOKENS: a token is well known or shorter than "
                        f"{MIN_TOKEN_CHARS} characters; outside the local stack use long random "
                        "tokens (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                    )
        return self

    @field_validator("public_tiers")
    @classmethod
    def _check_public_tiers(cls, value: dict[str, PublicTierPolicy]) -> dict[str, PublicTierPolicy]:
        if "anonymous" not in value:
            raise ValueError("needs an 'anonymous' tier (requests without an API key)")
        return value

    @field_validator("postgres_url")
    @classmethod
    def _check_postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgresql+psycopg2://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("redis_url", "rate_limit_redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "redis+socket://", "amqp://", "amqps://", "pyamqp://")
        if value is not None and not value.startswith(schemes):
            raise ValueError("must be a redis:// or amqp:// URL")
        return value

    @property
    def database_url(self) -> str:
        if not self.postgres_url:
            raise ConfigurationError("GATEWAY_POSTGRES_URL is not set")
        return to_sqlalchemy_url(self.postgres_url)

    @property
    def cache_url(self) -> str:
        if not self.redis_url:
            raise ConfigurationError("GATEWAY_REDIS_URL is not set")
        return self.redis_url

    @property
    def celery_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return self.cache_url

    @property
    def is_redis_broker(self) -> bool:
        return self.celery_broker_url.startswith(("redis", "rediss", "unix"))

    @property
    def run_lease_renew_interval_s(self) -> float:
        return self.celery_run_lease_renew_s or self.celery_run_lease_s / 3

    @property
    def run_handoff_lease_s(self) -> float:
        """A run whose result waits in the ingest queue is held as long as a whole run may
        take, so an ingest backlog is not mistaken for lost runs and scraped again."""
        return float(self.celery_run_handoff_lease_s or self.task_time_limit_s + 60)

    @model_validator(mode="after")
    def _check_task_timings(self) -> GatewaySettings:
        if self.visibility_timeout_s <= self.task_time_limit_s + VISIBILITY_MARGIN_S:
            raise ValueError(
                f"GATEWAY_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s}) must exceed "
                f"GATEWAY_TASK_TIME_LIMIT_S ({self.task_time_limit_s}) by more than "
                f"{VISIBILITY_MARGIN_S}s, or Redis delivers running tasks a second time"
            )
        # At most half a lease: one slow or failed tick (a connect may take 5 s) must not let
        # a live run's lease run out.
        if self.run_lease_renew_interval_s > self.celery_run_lease_s / 2:
            raise ValueError(
                f"GATEWAY_CELERY_RUN_LEASE_RENEW_S ({self.celery_run_lease_renew_s}) must be at "
                f"most half of GATEWAY_CELERY_RUN_LEASE_S ({self.celery_run_lease_s}), or live "
                "runs are reaped after one missed renewal"
            )
        return self

    @model_validator(mode="after")
    def _check_result_timings(self) -> GatewaySettings:
        if self.results_sync_wait_s > self.results_max_wait_s:
            raise ValueError(
                f"GATEWAY_RESULTS_SYNC_WAIT_S ({self.results_sync_wait_s}) must not exceed "
                f"GATEWAY_RESULTS_MAX_WAIT_S ({self.results_max_wait_s})"
            )
        if self.result_outbox_grace_s <= self.ingest_outage_wait_s:
            raise ValueError(
                f"GATEWAY_RESULT_OUTBOX_GRACE_S ({self.result_outbox_grace_s}) must exceed "
                f"GATEWAY_INGEST_OUTAGE_WAIT_S ({self.ingest_outage_wait_s}), or results still "
                "being written are sent again"
            )
        return self

    def check_servers(self) -> None:
        """Fail fast, in one line, when a process that needs the servers has no URL for them."""
        _ = self.database_url, self.cache_url, self.celery_broker_url


def parse_trusted_proxies(value: str) -> tuple[IpNetwork, ...]:
    """A comma list of addresses or networks; ``*`` (any proxy) is refused."""
    networks: list[IpNetwork] = []
    for entry in (part.strip() for part in value.split(",")):
        if entry == "*":
            raise ValueError("'*' lets any client name its own address: list your proxies")
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an address or network") from exc
    return tuple(networks)


def to_sqlalchemy_url(postgres_url: str) -> str:
    """SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the project ships psycopg2."""
    if postgres_url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + postgres_url.removeprefix("postgresql://")
    return postgres_url


def load_settings() -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings: its message names the variables
            raise ConfigurationError(first["msg"].removeprefix("Value error, ")) from None
        field = str(first["loc"][0])
        shown = redact_setting(field, first.get("input"))
        raise ConfigurationError(f"GATEWAY_{field.upper()}: {first['msg']} (got {shown})") from None


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@]*):[^@]*@", re.I)


def redact_setting(field: str, value: object) -> str:
    """How a rejected value may be shown: never a token, secret, password, or the password
    inside a URL (``postgresql://user:***@host/db``)."""
    if any(word in field for word in _SECRET_FIELDS):
        return "<redacted>"
    text = repr(value)
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    return load_settings()
