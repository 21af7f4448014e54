"""The lake's storage: local paths and ``s3://`` URIs through ``pyarrow.fs``.

Only what the jobs and the sensor need: list one level (a delimiter listing on S3, so the cost
follows the number of folders, not files), read and write small files, delete folders. Nothing
is ever moved or copied: publishing changes pointers (see publish.py).
boto3 stays for the AWS APIs that are not storage (Glue, Athena, Clean Rooms, SNS) and for what
Dagster Pipes and `flywheel deploy` need of S3.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0  # seconds since the epoch (files only)


def is_hidden(name: str) -> bool:
    """Not data, as Spark, Hive and Athena see it: ``_SUCCESS``, ``_staging/``, ``.crc`` files..."""
    return name.startswith(("_", "."))


def join(root: str, *parts: str) -> str:
    out = root.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def normalize(uri: str) -> str:
    """``..``, ``.`` and doubled slashes resolved, no trailing slash; the scheme is kept."""
    import posixpath

    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "", uri
    path = posixpath.normpath("/" + rest if sep else rest)
    return f"{scheme}://{path.lstrip('/')}" if sep else path


def is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


def s3_endpoint() -> Optional[str]:
    """A non-AWS S3 endpoint (moto in tests), from boto3's own environment variables."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


# Every AWS client of the platform: throttling (SlowDown, ThrottlingException, 5xx) is retried by
# botocore with exponential backoff, and adaptive mode slows the client's own request rate.
MAX_ATTEMPTS = 10


def retries() -> dict:
    return {"mode": "adaptive", "max_attempts": MAX_ATTEMPTS}  # fresh: botocore rewrites the dict it is given


_client_lock = threading.Lock()


def aws_client(service: str, region: Optional[str] = None):
    import boto3
    from botocore.config import Config

    with _client_lock:  # boto3's default session is not thread-safe (its clients are): steps use threads
        return boto3.client(service, region_name=region, config=Config(retries=retries()))


_s3_clients: dict = {}


def s3_client():
    """One S3 client per process and endpoint."""
    endpoint = s3_endpoint()
    if endpoint not in _s3_clients:
        _s3_clients[endpoint] = aws_client("s3")
    return _s3_clients[endpoint]


def filesystem_of(uri: str, quick: bool = False):
    """The ``pyarrow.fs`` file system of a URI and the path in it: local, or S3 (moto in tests)."""
    from pyarrow import fs

    if is_s3(uri):
        bucket, key = split_s3(uri)
        return _s3_filesystem(quick), f"{bucket}/{key}".rstrip("/")
    return fs.LocalFileSystem(), str(local_path(uri))


_s3_filesystems: dict = {}


def _s3_filesystem(quick: bool = False):
    """One S3 file system per process and endpoint: credentials from the usual chain (never
    logged), throttling and 5xx retried with backoff by the AWS SDK, as the boto3 clients do.
    ``quick``: short timeouts and one retry, for reads that must not hang when S3 is unreachable
    (the table catalogue while the definitions load)."""
    from pyarrow import fs

    endpoint = s3_endpoint()
    if (endpoint, quick) not in _s3_filesystems:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        timeouts = {"connect_timeout": 2, "request_timeout": 5} if quick else {}
        _s3_filesystems[endpoint, quick] = fs.S3FileSystem(
            endpoint_override=endpoint, region=region, **timeouts,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=2 if quick else MAX_ATTEMPTS))
    return _s3_filesystems[endpoint, quick]


def list_dir(uri: str) -> list[Entry]:
    """Immediate children of a folder; empty if it does not exist (on S3 one delimiter listing)."""
    from pyarrow import fs

    filesystem, path = filesystem_of(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True, recursive=False))
    return [Entry(i.base_name, i.type == fs.FileType.Directory, i.size or 0,
                  i.mtime.timestamp() if i.mtime and i.type == fs.FileType.File else 0.0)
            for i in infos if i.base_name]


def list_files(uri: str) -> list[tuple[str, int]]:
    """(path relative to ``uri``, size) of every file below a folder, at any depth: one listing
    however many subfolders (on S3 one paginated listing without delimiter)."""
    from pyarrow import fs

    filesystem, path = filesystem_of(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True, recursive=True))
    base = path.rstrip("/") + "/"
    return sorted((i.path[len(base):], i.size or 0) for i in infos
                  if i.type == fs.FileType.File and i.path.startswith(base))


def read_bytes(uri: str, quick: bool = False) -> Optional[bytes]:
    """The file's content, or None if it does not exist."""
    filesystem, path = filesystem_of(uri, quick)
    try:
        with filesystem.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:  # pyarrow raises it for a missing S3 key too
        return None


def read_text(uri: str) -> Optional[str]:
    """The file's text (UTF-8, BOM dropped), or None if it does not exist."""
    data = read_bytes(uri)
    return None if data is None else data.decode("utf-8-sig")


def write_text(uri: str, text: str) -> None:
    """Write a small file in one step (atomic rename locally; a single PUT on S3)."""
    if is_s3(uri):
        filesystem, path = filesystem_of(uri)
        with filesystem.open_output_stream(path) as f:
            f.write(text.encode("utf-8"))
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def delete_tree(uri: str) -> None:
    """Remove a folder and everything below it (a prefix on S3); absent is fine."""
    filesystem, path = filesystem_of(uri)
    try:
        filesystem.delete_dir(path)
    except FileNotFoundError:
        pass


def delete_file(uri: str) -> None:
    """Remove one file; absent is fine."""
    filesystem, path = filesystem_of(uri)
    try:
        filesystem.delete_file(path)
    except FileNotFoundError:
        pass


def folder_exists(uri: str) -> bool:
    """A folder (on S3: any key under the prefix)."""
    from pyarrow import fs

    filesystem, path = filesystem_of(uri)
    return filesystem.get_file_info(path).type == fs.FileType.Directory


def remove_if_empty(uri: str) -> None:
    """Remove an empty folder (on S3, the empty directory marker pyarrow leaves after a delete)."""
    if not is_s3(uri):
        try:
            local_path(uri).rmdir()
        except OSError:
            pass
        return
    if folder_exists(uri) and not list_dir(uri):
        delete_tree(uri)
