"""Settings of a service that keeps files: which adapter, and where (environment prefix of the service)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, model_validator

from services.kit.settings import ServiceSettings


class StorageSettings(ServiceSettings):
    """`PROPERTY_STORAGE_BACKEND=s3` and so on; PostgreSQL by default, which every replica shares."""

    # postgres: files in the service's own database (chunked bytea rows), nothing new to run;
    # s3: an S3-compatible object store (production; presigned URLs); directory: local mode only.
    storage_backend: Literal["postgres", "s3", "directory"] = "postgres"
    # The directory adapter's root. One replica's disk: refused outside local mode.
    storage_dir: str = ".local/files"
    # Rows of the PostgreSQL adapter: a file is stored and streamed in pieces of this size.
    storage_chunk_bytes: int = 256 * 1024
    storage_s3_bucket: str = ""
    # The endpoint the service talks to (empty: AWS itself, from the region).
    storage_s3_endpoint_url: str | None = None
    # The endpoint presigned URLs name, when clients reach the store by another address than the
    # service does (an internal Service name versus a public host). Empty: the same endpoint.
    storage_s3_public_endpoint_url: str | None = None
    storage_s3_region: str = "us-east-1"
    # path (`https://host/bucket/key`) suits MinIO, SeaweedFS, Ceph; virtual (`bucket.host`) suits AWS, OSS, COS.
    storage_s3_addressing_style: Literal["path", "virtual", "auto"] = "path"
    # Empty: the client's usual chain (environment, web identity token, instance role).
    storage_s3_access_key_id: str | None = None
    storage_s3_secret_access_key: SecretStr | None = None
    storage_timeout_s: float = 10.0
    # How long a presigned upload or download URL stays valid.
    storage_url_expires_s: int = 300

    @model_validator(mode="after")
    def _storage_is_complete(self) -> StorageSettings:
        prefix = str(self.model_config.get("env_prefix") or "")
        if self.storage_backend == "directory" and self.mode != "local":
            raise ValueError(
                f"{prefix}STORAGE_BACKEND=directory keeps files on one replica's disk: use postgres or s3 outside local mode"
            )
        if self.storage_backend == "s3" and not self.storage_s3_bucket:
            raise ValueError(f"{prefix}STORAGE_BACKEND=s3 needs {prefix}STORAGE_S3_BUCKET")
        return self
