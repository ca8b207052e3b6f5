"""Where images come from: bytes, local files, or objects in an S3-compatible store (read with boto3).

The object store is configured with ``FACECOMPARE_S3_ENDPOINT_URL`` (e.g. a local SeaweedFS or MinIO) and
the usual AWS credential variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import AccessDeniedException, ImageTooLargeException, InvalidS3ObjectException, quote_input

S3_MAX_BYTES = 15 * 1000 * 1000  # Rekognition's limit for images read from S3


@dataclass(frozen=True)
class S3Settings:
    """Where the object store is: the only place this layer reads the environment (credentials are boto3's own)."""

    endpoint_url: str | None = None  # FACECOMPARE_S3_ENDPOINT_URL; None: AWS S3
    region: str = "us-east-1"  # AWS_REGION, else AWS_DEFAULT_REGION

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        environ = os.environ if environ is None else environ
        return cls(environ.get("FACECOMPARE_S3_ENDPOINT_URL"),
                   environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1")


class S3Reader:
    """Reads objects with one shared boto3 client (thread-safe), with timeouts and a size limit."""

    def __init__(self, endpoint_url: str | None = None, region: str | None = None, max_bytes: int = S3_MAX_BYTES,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0, client=None,
                 settings: S3Settings | None = None) -> None:
        """``client``: an existing boto3 S3 client to use instead of one built from the environment. What
        ``endpoint_url`` and ``region`` leave unset comes from ``settings`` (default :meth:`S3Settings.from_env`)."""
        configured = settings or S3Settings.from_env()
        self.endpoint_url = endpoint_url if endpoint_url is not None else configured.endpoint_url
        self.region = region or configured.region
        self.max_bytes = max_bytes
        self._timeouts = (connect_timeout, read_timeout)
        self._client = client
        self._lock = threading.Lock()

    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client(
                        "s3", endpoint_url=self.endpoint_url or None, region_name=self.region,
                        config=Config(connect_timeout=self._timeouts[0], read_timeout=self._timeouts[1],
                                      retries={"max_attempts": 2, "mode": "standard"},
                                      s3={"addressing_style": "path"}),
                    )
        return self._client

    def read(self, bucket: str, key: str, version: str | None = None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs = {"Bucket": bucket, "Key": key}
        where = quote_input(f"s3://{bucket}/{key}")  # the client's address, cut short for the messages
        if version:
            kwargs["VersionId"] = version
        try:
            response = self.client().get_object(**kwargs)
            size = int(response.get("ContentLength") or 0)
            if size > self.max_bytes:
                response["Body"].close()
                raise ImageTooLargeException(
                    f"Image size is too large: {where} has {size:,} bytes; the limit for S3 objects "
                    f"is {self.max_bytes:,}."
                )
            data = response["Body"].read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise ImageTooLargeException(f"Image size is too large: {where} exceeds {self.max_bytes:,} bytes.")
            return data
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise AccessDeniedException(
                    f"Access denied reading {where}: check the object store credentials."
                ) from None
            raise InvalidS3ObjectException(
                f"Unable to get object metadata from S3. Check object key, region and/or access permissions. "
                f"({where}: {code or 'error'})"
            ) from None
        except BotoCoreError as exc:
            raise InvalidS3ObjectException(
                f"Unable to read {where} from the object store ({type(exc).__name__}); "
                "check FACECOMPARE_S3_ENDPOINT_URL and that the store is reachable."
            ) from None


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise InvalidS3ObjectException(f"{quote_input(url)} is not an s3://bucket/key address.")
    bucket, key = url[5:].split("/", 1)
    if not bucket or not key:
        raise InvalidS3ObjectException(f"{quote_input(url)} is not an s3://bucket/key address.")
    return bucket, key
