"""The gateway's settings, read from `GATEWAY_*` variables (and the platform-wide fallbacks)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from gateway.limits import BODY_READ_TIMEOUT_S
from services.kit.settings import ServiceSettings, service_config
from services.kit.sms import SmsSettings

SERVICES = ("timebank", "parking", "property", "governance", "citysync", "notify")


# The SMS port's settings (SmsSettings: GATEWAY_SMS_PROVIDER, GATEWAY_TENCENT_*...) are notify's
# too: login codes leave by the same port (gateway/identity.py's SmsCodeSender).
class Settings(ServiceSettings, SmsSettings):
    model_config = service_config("GATEWAY_")

    service_name: str = "gateway"

    # --- routing ----------------------------------------------------------------------------------
    # GATEWAY_TIMEBANK_URL ... one per service; `upstreams` (a JSON object) replaces them all at once.
    timebank_url: str = "http://127.0.0.1:8001"
    parking_url: str = "http://127.0.0.1:8002"
    property_url: str = "http://127.0.0.1:8003"
    governance_url: str = "http://127.0.0.1:8004"
    citysync_url: str = "http://127.0.0.1:8005"
    notify_url: str = "http://127.0.0.1:8006"
    upstreams: dict[str, str] = Field(default_factory=dict)
    # Connections the proxy's upstream client (gateway/upstream_client.py) keeps in use at once.
    upstream_max_connections: int = 200
    default_timeout_s: float = 10.0
    # Per-route timeouts: the longest matching prefix of "<service>/<path>" wins.
    route_timeouts_s: dict[str, float] = Field(default_factory=dict)
    # Extra attempts after a connection failure or timeout, for GET/HEAD/OPTIONS/PUT/DELETE only.
    # The longest wait for the next piece of a request body: past it the caller is answered 408.
    # The upstream's timeout runs only while the gateway waits on the upstream, never on the caller.
    body_read_timeout_s: float = BODY_READ_TIMEOUT_S
    idempotent_retries: int = 2
    retry_backoff_s: float = 0.05
    breaker_failure_threshold: int = 5
    breaker_open_s: float = 10.0
    openapi_cache_s: float = 30.0
    # Event streams (gateway/streams.py): "<service>/<path>" whose GET answers stream as they
    # arrive, without the route's timeout once the headers are in. The longest silence between two
    # pieces is `stream_idle_timeout_s` (notify sends a heartbeat every 15 s). Per replica: streams
    # per person (notify bounds them across replicas too) and in all (each holds a connection).
    stream_routes: list[str] = Field(default_factory=lambda: ["notify/stream"])
    stream_idle_timeout_s: float = 60.0
    stream_max_per_user: int = 3
    stream_max_open: int = 10_000

    # --- identity ---------------------------------------------------------------------------------
    # The key set every replica shares (gateway/keys.py): a read-only Secret mount in a cluster.
    keys_dir: Path = Path(".local/keys")
    # How often each replica looks at keys_dir again, so a rotation reaches it within seconds.
    keys_reload_s: float = 2.0
    # Communities this gateway serves; a token for any other is refused (empty: any community).
    communities: list[str] = Field(default_factory=lambda: ["lishui-baiyun"])
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    # Production may trust an external OIDC issuer instead of the gateway's own keys.
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456

    # --- protection -------------------------------------------------------------------------------
    rate_limit_user: str = "600/minute"
    rate_limit_ip: str = "1200/minute"
    # Login attempts per client address, whatever the account.
    rate_limit_login: str = "20/minute"
    # Per account and client address together: wrong guesses before the waits start, the longest
    # wait (doubling from 1 s), and how long a pair's failures are remembered (gateway/throttle.py).
    login_free_failures: int = 10
    login_max_delay_s: float = 900.0
    login_failures_kept_s: int = 24 * 3600
    # One-time codes sent (each an SMS) per phone number and per client address, per day.
    otp_sends_per_phone: str = "10/day"
    otp_sends_per_ip: str = "200/day"
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl_s: int = 24 * 3600
    idempotency_lock_s: int = 60
    # Networks of the proxies in front of the gateway (CIDRs, e.g. the ingress's pods): only from
    # these is X-Forwarded-For believed (gateway/clients.py). Empty: the peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:5173", "http://localhost:5173"])

    @model_validator(mode="after")
    def _upstreams_from_urls(self) -> Settings:
        # Without an explicit `upstreams` object, route to every service by its own URL setting.
        if not self.upstreams:
            self.upstreams = {name: getattr(self, f"{name}_url") for name in SERVICES}
        return self
