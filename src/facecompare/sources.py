"""One reader of images named by a string: ``s3://bucket/key`` on the configured S3-compatible store, or a local
path. Batch rows, dedupe rows, review cases, reports, the CLI and the server's S3 objects all read through it.

The checks, the same for every caller:

* an ``s3://`` address must name a bucket and a key (:func:`~facecompare.storage.parse_s3_url`), and the object
  is read within :class:`~facecompare.storage.S3Reader`'s limit (15 MB, Rekognition's for S3 objects: its
  declared length first, then what arrives), with typed errors (InvalidS3ObjectException, AccessDenied...);
* an S3 object is decoded within that same limit (not the 5 MiB of inline bytes);
* a path is read by the engine's own reader (:func:`~facecompare.images.read_source_bytes`): not found, not a
  file or over ``Settings.max_file_bytes`` are InvalidParameterException / ImageTooLargeException, never an
  OSError.

Who may read which object (FACECOMPARE_S3_ACCESS) is the server's rule, checked by its pipeline before it calls
:meth:`ImageReader.object_bytes` or :meth:`ImageReader.load_object`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .storage import S3Reader, parse_s3_url

S3_SCHEME = "s3://"


def is_s3_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(S3_SCHEME)


def resolve_location(base: Path, location: str) -> str:
    """A manifest's location as the reader takes it: an ``s3://`` address or an absolute path as written, a
    relative path from the manifest's folder ``base``."""
    return location if is_s3_url(location) or os.path.isabs(location) else str(base / location)


class ImageReader:
    """Reads locations (thread-safe). ``s3``: the object store's reader, made on first use when not given;
    ``settings``: the limits for local files (default ``Settings.from_env()``, read on first use)."""

    def __init__(self, s3: S3Reader | None = None, settings=None) -> None:
        self._s3 = s3
        self._settings = settings
        self._lock = threading.Lock()

    @property
    def s3(self) -> S3Reader:
        if self._s3 is None:
            with self._lock:
                if self._s3 is None:
                    self._s3 = S3Reader()
        return self._s3

    # -- S3 objects ---------------------------------------------------------------------------------------------

    def object_bytes(self, bucket: str, key: str, version: str | None = None) -> bytes:
        """The bytes of an S3 object, within the S3 limit."""
        return self.s3.read(bucket, key, version)

    def decode_object(self, verifier, data: bytes):
        """An S3 object's bytes decoded by ``verifier`` within the S3 limit (inline bytes have a smaller one)."""
        return verifier.load(data, max_bytes=self.s3.max_bytes)

    def load_object(self, verifier, bucket: str, key: str, version: str | None = None):
        """An S3 object, read and decoded."""
        return self.decode_object(verifier, self.object_bytes(bucket, key, version))

    # -- locations ----------------------------------------------------------------------------------------------

    def source(self, verifier, location: str):
        """An image source for ``verifier``: an S3 object decoded, or the path as given (the engine reads it where
        it analyses the image, e.g. in its own thread for a pair)."""
        if is_s3_url(location):
            return self.load_object(verifier, *parse_s3_url(location))
        return location

    def load(self, verifier, location: str):
        """The decoded image at ``location`` (:class:`~facecompare.images.DecodedImage`)."""
        if is_s3_url(location):
            return self.load_object(verifier, *parse_s3_url(location))
        return verifier.load(location)

    def read_bytes(self, location: str) -> bytes:
        """The encoded bytes at ``location`` (to keep or to show), with the same checks."""
        if is_s3_url(location):
            return self.object_bytes(*parse_s3_url(location))
        from .images import read_source_bytes

        return read_source_bytes(location, self.settings)

    @property
    def settings(self):
        if self._settings is None:
            from .settings import Settings

            self._settings = Settings.from_env()
        return self._settings
