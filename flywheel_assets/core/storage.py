"""A small file-system interface over local paths and ``s3://`` URIs.

Only what the jobs and the sensor need: list one level (delimiter listing on S3, so the cost
follows the number of folders, not files), read and write small text files.
"""

from __future__ import annotations

import os
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
RETRIES = {"mode": "adaptive", "max_attempts": 10}


def aws_client(service: str, region: Optional[str] = None):
    import boto3
    from botocore.config import Config

    return boto3.client(service, region_name=region, config=Config(retries=RETRIES))


_s3_clients: dict = {}


def s3_client():
    """One S3 client per process and endpoint."""
    endpoint = s3_endpoint()
    if endpoint not in _s3_clients:
        _s3_clients[endpoint] = aws_client("s3")
    return _s3_clients[endpoint]


def list_dir(uri: str) -> list[Entry]:
    """Immediate children of a folder; empty if it does not exist."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        entries = []
        paginator = s3_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for cp in page.get("CommonPrefixes", []):
                entries.append(Entry(cp["Prefix"][len(prefix):].rstrip("/"), True))
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if name:
                    entries.append(Entry(name, False, obj["Size"], obj["LastModified"].timestamp()))
        return entries
    path = local_path(uri)
    if not path.is_dir():
        return []
    out = []
    with os.scandir(path) as it:
        for e in it:
            is_dir = e.is_dir()
            stat = None if is_dir else e.stat()
            out.append(Entry(e.name, is_dir, stat.st_size if stat else 0, stat.st_mtime if stat else 0.0))
    return out


def read_bytes(uri: str) -> Optional[bytes]:
    """The file's content, or None if it does not exist."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = s3_client()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
    path = local_path(uri)
    return path.read_bytes() if path.is_file() else None


def read_text(uri: str) -> Optional[str]:
    """The file's text (UTF-8, BOM dropped), or None if it does not exist."""
    data = read_bytes(uri)
    return None if data is None else data.decode("utf-8-sig")


def write_text(uri: str, text: str) -> None:
    """Write a small file in one step (atomic rename locally; a single PUT on S3)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def delete_tree(uri: str) -> None:
    """Remove a folder and everything below it (a prefix on S3); absent is fine."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        prefix = key.rstrip("/") + "/"
        client = s3_client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        return
    import shutil

    shutil.rmtree(local_path(uri), ignore_errors=True)


def folder_exists(uri: str) -> bool:
    """A folder (on S3: any key under the prefix)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        page = s3_client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        return bool(page.get("KeyCount"))
    return local_path(uri).is_dir()


def move_tree(src: str, dst: str) -> None:
    """Move a folder to a path that does not exist yet.

    Locally one atomic rename. On S3 (no rename) every object is copied, then the source deleted;
    a move interrupted half-way is finished by running it again.
    """
    if not is_s3(src):
        target = local_path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(local_path(src), target)
        return
    bucket, key = split_s3(src)
    dst_bucket, dst_key = split_s3(dst)
    prefix, dst_prefix = key.rstrip("/") + "/", dst_key.rstrip("/") + "/"
    client = s3_client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            client.copy({"Bucket": bucket, "Key": obj["Key"]}, dst_bucket, dst_prefix + obj["Key"][len(prefix):])
    delete_tree(src)


def remove_if_empty(uri: str) -> None:
    """Remove an empty local folder (S3 has no empty folders)."""
    if not is_s3(uri):
        try:
            local_path(uri).rmdir()
        except OSError:
            pass
