"""``s3://`` storage through boto3, with the client resolved from the Amazon provider's connection.

The client is built lazily (``boto3`` is imported on first use, never while a DAG
file is parsed) and cached once per process and connection id: boto3 clients are
thread-safe, and building one costs tens of milliseconds.

Where the client comes from:

1. the Airflow ``aws`` connection named by ``CATALOG_AWS_CONN_ID`` (default
   ``aws_default``) through ``S3Hook``: inside tasks, ``dag.test()`` and with
   ``AIRFLOW_CONN_AWS_DEFAULT`` (its ``extra.endpoint_url`` points at MinIO, moto, ...);
2. when that connection does not exist, a plain ``boto3.client("s3")``, which honours
   ``AWS_ENDPOINT_URL`` and the usual ``AWS_*`` variables and instance roles.

Retries are botocore's ("standard" mode: 500/502/503/504, ``SlowDown`` and throttling,
connection errors), ``CATALOG_S3_MAX_ATTEMPTS`` attempts in total (default 5). A GET
whose body breaks off mid-stream is outside botocore's retry loop, so
:meth:`S3Storage.read_bytes` retries that itself. Every failure surfaces as
:class:`S3StorageError` naming the URI and the S3 error code, with any credential
scrubbed from the text (and no chained botocore exception that could carry one).

URIs are ``s3://bucket/key`` with the key as it is: never percent-encoded, so keys
with spaces and unicode round-trip and ``uri[len(root):]`` is the relative key.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import threading
from typing import Any

from airflow_image_catalog.storage.base import BACKENDS, ObjectInfo, StorageError

log = logging.getLogger(__name__)

ENV_CONN_ID = "CATALOG_AWS_CONN_ID"
ENV_MAX_ATTEMPTS = "CATALOG_S3_MAX_ATTEMPTS"
DEFAULT_CONN_ID = "aws_default"
DEFAULT_MAX_ATTEMPTS = 5
CONNECT_TIMEOUT = 10.0  # seconds
READ_TIMEOUT = 60.0
MAX_POOL_CONNECTIONS = 32  # chunks read and write from thread pools
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_clients: dict[tuple[int, str], Any] = {}
_clients_lock = threading.Lock()


class S3StorageError(StorageError):
    """An S3 call failed; ``code`` is the S3 error code (or the botocore exception name)."""

    def __init__(self, message: str, code: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status

    def __reduce__(self):  # keep pickling (multiprocessing, XCom of exceptions) working
        return type(self), (str(self), self.code, self.status)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b.jpg`` -> ``("bucket", "a/b.jpg")``; the key is taken verbatim (no URL parsing)."""
    scheme, sep, rest = str(uri).partition("://")
    if not sep or scheme.lower() != "s3":
        raise StorageError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}")
    return bucket, key


def max_attempts() -> int:
    """Total attempts per S3 call (first try included), from ``CATALOG_S3_MAX_ATTEMPTS``."""
    raw = os.environ.get(ENV_MAX_ATTEMPTS, "").strip()
    try:
        return max(1, int(raw)) if raw else DEFAULT_MAX_ATTEMPTS
    except ValueError:
        raise StorageError(f"{ENV_MAX_ATTEMPTS} must be an integer, got {raw!r}") from None


def botocore_config():
    """Retries and timeouts every client gets (a connection's ``config_kwargs`` may refine them)."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts()},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


def conn_id_from_env() -> str:
    return os.environ.get(ENV_CONN_ID) or DEFAULT_CONN_ID


def _client_from_connection(conn_id: str, config):
    """A client from the Airflow ``aws`` connection, or None when Airflow or the connection is missing."""
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError:
        return None
    wrapper = S3Hook(aws_conn_id=conn_id).conn_config  # a falsy wrapper: no such connection
    if not wrapper:
        return None
    if wrapper.botocore_config is not None:  # the connection's own config_kwargs win over our defaults
        config = config.merge(wrapper.botocore_config)
    return S3Hook(aws_conn_id=conn_id, config=config).get_conn()


def _new_client(conn_id: str):
    config = botocore_config()
    try:
        client = _client_from_connection(conn_id, config)
        if client is None:
            import boto3

            client = boto3.client("s3", config=config)
    except StorageError:
        raise
    except Exception as exc:  # a malformed connection, an unknown region, ...: name it, never echo it
        raise S3StorageError(f"cannot build an S3 client from connection {conn_id!r}: "
                             f"{type(exc).__name__}: {_redact(str(exc), ())}", type(exc).__name__) from None
    log.debug("S3 client for connection %r: endpoint %s", conn_id, client.meta.endpoint_url)
    return client


def shared_client(conn_id: str | None = None):
    """The process's client for ``conn_id`` (built on first use; a forked child builds its own)."""
    key = (os.getpid(), conn_id or conn_id_from_env())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(key[1])
    return client


def clear_client_cache() -> None:
    """Forget cached clients (tests that re-point ``AWS_ENDPOINT_URL`` or the connection)."""
    with _clients_lock:
        _clients.clear()


def _client_secrets(client) -> tuple[str, ...]:
    """The client's key id, secret and token, to scrub from error text (best effort)."""
    try:
        creds = client._request_signer._credentials  # botocore keeps them here; no public accessor
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception:
        return ()
    if frozen is None:
        return ()
    # short dummy keys ("testing") would mangle bucket names in the message; real ones are 16+ chars
    return tuple(s for s in (frozen.access_key, frozen.secret_key, frozen.token) if s and len(s) >= 8)


def _redact(text: str, secrets) -> str:
    text = _URL_USERINFO.sub("***@", text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _is_not_found(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND_CODES


class S3Storage:
    """Objects in S3 (or any S3-compatible endpoint).

    :param client: a boto3 S3 client to use instead of the shared one (tests, custom sessions).
    :param conn_id: the Airflow ``aws`` connection (default: ``CATALOG_AWS_CONN_ID`` or ``aws_default``).
    """

    def __init__(self, client=None, *, conn_id: str | None = None):
        self._client = client
        self.conn_id = conn_id or conn_id_from_env()

    clear_clients = staticmethod(clear_client_cache)

    @property
    def client(self):
        if self._client is None:
            self._client = shared_client(self.conn_id)
        return self._client

    def _error(self, action: str, uri: str, exc: Exception) -> S3StorageError:
        """A StorageError naming the URI, the S3 error code, the HTTP status and the attempts made.

        Raised ``from None``: the botocore exception's text is not scrubbed, and tracebacks
        print chained exceptions, so the chain ends here; this message says all it said.
        """
        from botocore.exceptions import ClientError

        status = None
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            code = str(error.get("Code") or "Unknown")
            status = meta.get("HTTPStatusCode")
            detail = f"HTTP {status}"
            if error.get("Message"):
                detail += f": {error['Message']}"
            if meta.get("RetryAttempts"):
                detail += f"; gave up after {meta['RetryAttempts'] + 1} attempts"
        else:
            code, detail = type(exc).__name__, str(exc)
        secrets = _client_secrets(self._client) if self._client is not None else ()
        return S3StorageError(_redact(f"cannot {action} {uri}: {code} ({detail})", secrets), code, status)

    def read_bytes(self, uri: str) -> bytes:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        bucket, key = split_s3_uri(uri)
        attempts = max_attempts()
        for attempt in range(1, attempts + 1):
            try:
                body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            except (BotoCoreError, ClientError) as exc:
                raise self._error("read", uri, exc) from None
            try:
                return body.read()
            except (IncompleteReadError, ResponseStreamingError, ReadTimeoutError) as exc:
                # botocore retries the request, not a body that broke off mid-stream
                if attempt == attempts:
                    raise self._error("read", uri, exc) from None
                log.warning("reading %s broke off (%s); attempt %d of %d", uri, type(exc).__name__,
                            attempt + 1, attempts)
            finally:
                body.close()
        raise AssertionError("unreachable")

    def write_bytes(self, uri: str, data: bytes) -> str:
        """One PutObject: S3 makes the object visible whole or not at all."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        if not key or key.endswith("/"):
            raise StorageError(f"cannot write {uri}: not an object key")
        extra = {}
        content_type = mimetypes.guess_type(key)[0]
        if content_type:
            extra["ContentType"] = content_type
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=bytes(data), **extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._error("write", uri, exc) from None
        return f"s3://{bucket}/{key}"

    def exists(self, uri: str) -> bool:
        """True if the object exists; a missing object is False, any other failure raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        if not key:
            return False
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if _is_not_found(exc):
                return False
            raise self._error("check", uri, exc) from None
        return True

    def location_exists(self, prefix: str) -> bool:
        """Whether ``prefix`` can hold objects: its bucket exists and this client may list it (one key at
        most is asked for: S3 has no folders, so an empty prefix of a listable bucket exists)."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(prefix)
        try:
            self.client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except (BotoCoreError, ClientError) as exc:
            if _is_not_found(exc):
                return False
            raise self._error("list", prefix, exc) from None
        return True

    def delete(self, uri: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(uri)
        if not key:
            raise StorageError(f"cannot delete {uri}: not an object key")
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if not _is_not_found(exc):
                raise self._error("delete", uri, exc) from None

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects under ``prefix`` as a folder (``a/b`` lists ``a/b/...``, not ``a/bc``), sorted.

        Keys with a hidden component below the prefix (``.cache/x``, ``.x.jpg``) and
        zero-byte folder markers (``dir/``) are skipped, like the local backend skips
        dotfiles. A prefix with nothing under it that is itself an object lists as that
        object; an empty prefix is ``[]`` (S3 has no folders that could be missing).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(prefix)
        folder = key if not key or key.endswith("/") else key + "/"
        found: list[ObjectInfo] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
                for obj in page.get("Contents", ()):
                    relative = obj["Key"][len(folder):]
                    if not relative or relative.endswith("/"):
                        continue
                    if any(part.startswith(".") for part in relative.split("/")):
                        continue
                    found.append(ObjectInfo(f"s3://{bucket}/{obj['Key']}", int(obj["Size"]), _etag(obj)))
            if not found and folder != key:
                try:
                    head = self.client.head_object(Bucket=bucket, Key=key)
                except ClientError as exc:
                    if not _is_not_found(exc):
                        raise
                else:
                    found.append(ObjectInfo(f"s3://{bucket}/{key}", int(head["ContentLength"]), _etag(head)))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list", prefix, exc) from None
        found.sort(key=lambda o: o.uri)
        return found


def _etag(meta: dict) -> str | None:
    return str(meta.get("ETag") or "").strip('"') or None


BACKENDS["s3"] = S3Storage
