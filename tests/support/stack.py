"""The servers the tests talk to: embedded ones started once per test session, or external ones.

Set TEST_DATABASE_URL / TEST_REDIS_URL / TEST_KAFKA_BOOTSTRAP_SERVERS (or the plain DATABASE_URL,
REDIS_URL, KAFKA_BOOTSTRAP_SERVERS) to test against servers you run; otherwise PostgreSQL, Valkey
and Tansu are started from the virtual environment in a temporary folder and stopped at the end.
Each test gets its own databases (copied from a migrated template) and its own Kafka namespace.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from deploy.local.servers import EmbeddedPostgres, EmbeddedRedis, TansuBroker, free_port
from gateway.keys import SigningKey, ensure_keys, mint_token
from services.kit.db import plain_url
from services.kit.migrations import upgrade_database
from services.kit.settings import with_database


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


@dataclass
class TestStack:
    __test__ = False  # not a test class, despite the name

    pg_url: str
    redis_url: str
    kafka_bootstrap: str
    keys_dir: Path
    pg: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    broker: TansuBroker | None = None
    _templates: dict[str, str] = field(default_factory=dict)
    _template_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def start(cls) -> TestStack:
        work = Path(tempfile.mkdtemp(prefix="community-test-"))
        work.chmod(0o755)
        pg_url = _env("TEST_DATABASE_URL", "DATABASE_URL")
        redis_url = _env("TEST_REDIS_URL", "REDIS_URL")
        kafka = _env("TEST_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
        pg = redis = broker = None
        if pg_url is None:
            pg = EmbeddedPostgres(work / "pg" / "data", free_port())
            pg.start()
            pg_url = pg.url + "/postgres"
        if redis_url is None:
            redis = EmbeddedRedis(work / "redis", free_port())
            redis.start()
            redis_url = redis.url
        if kafka is None:
            broker = TansuBroker(work / "tansu", free_port())
            broker.start()
            kafka = broker.bootstrap
        keys_dir = work / "keys"
        ensure_keys(keys_dir)
        return cls(
            pg_url=pg_url, redis_url=redis_url, kafka_bootstrap=kafka, keys_dir=keys_dir, pg=pg, redis=redis, broker=broker
        )

    def stop(self) -> None:
        if self.broker:
            self.broker.stop()
        if self.redis:
            self.redis.stop()
        if self.pg:
            self.pg.stop(mode="immediate")

    # --- databases ------------------------------------------------------------------------------

    def database_url(self, name: str) -> str:
        return with_database(plain_url(self.pg_url), name)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url("postgres"))

    async def template_for(self, service: str) -> str:
        """A database with `service`'s migrations applied, made once per test session."""
        async with self._template_lock:
            if service not in self._templates:
                name = f"tmpl_{service}_{uuid.uuid4().hex[:6]}"
                await upgrade_database(service, self.database_url(name))
                self._templates[service] = name
            return self._templates[service]

    async def fresh_database(self, service: str) -> str:
        """A new, migrated, empty database for `service`; returns its URL."""
        template = await self.template_for(service)
        return await self.empty_database(service, template=template)

    async def empty_database(self, prefix: str, template: str | None = None) -> str:
        name = f"t_{prefix}_{uuid.uuid4().hex[:10]}"
        conn = await self._admin()
        try:
            sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else "")
            await conn.execute(sql)
        finally:
            await conn.close()
        return self.database_url(name)

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    # --- tokens ---------------------------------------------------------------------------------

    @property
    def jwks_url(self) -> str:
        return f"file://{self.keys_dir / 'jwks.json'}"

    @property
    def signing_key(self) -> SigningKey:
        return ensure_keys(self.keys_dir)[0]

    def token(self, subject: str, *roles: str, community: str = "test-community", ttl_s: int = 900, **extra: object) -> str:
        return mint_token(
            self.signing_key, subject=subject, roles=list(roles), community=community, ttl_s=ttl_s, extra=dict(extra) or None
        )

    def auth(self, subject: str, *roles: str, community: str = "test-community") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject, *roles, community=community)}"}

    # --- outages (embedded servers only) ----------------------------------------------------------

    def stop_broker(self) -> None:
        assert self.broker is not None
        self.broker.stop()

    def start_broker(self) -> None:
        assert self.broker is not None
        self.broker.start()

    def stop_database(self) -> None:
        assert self.pg is not None
        self.pg.stop(mode="immediate")

    def start_database(self) -> None:
        assert self.pg is not None
        self.pg.start()


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}."
