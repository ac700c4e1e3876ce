"""Resumable, checksum-verified downloads over HTTP (requests), for the real MusicNet.

The partial file lives beside the target as `<name>.part` (with `<name>.part.json` holding the
server's validators: ETag, Last-Modified, total size) and is renamed to `<name>` only after
its size and MD5 match. A retry resumes with an HTTP Range request; a server that ignores
Range (200 instead of 206) or whose file changed (another ETag, Last-Modified or size) starts
over rather than splicing two files. Connection errors, 5xx answers and stalls (no byte for
`timeout` seconds) retry with exponential backoff; 4xx answers fail at once. A file whose MD5
does not match is renamed `<name>.bad` and never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import requests

from jtm.errors import DataError
from jtm.progress import progress as progress_bar

log = logging.getLogger(__name__)
CHUNK = 1 << 18  # bytes per write; a cut transfer loses at most this much


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str
    size: int | None
    md5: str | None


@dataclasses.dataclass
class DownloadResult:
    path: Path
    bytes_transferred: int = 0
    attempts: int = 0
    resumed: bool = False


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """Fail before starting when `folder`'s file system has less than `needed` bytes free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(folder, f"{what} needs {needed / 1e9:.2f} GB, only {free / 1e9:.2f} GB free")


def _validators(response: requests.Response) -> dict:
    total = response.headers.get("Content-Range", "").rpartition("/")[2] or response.headers.get(
        "Content-Length"
    )
    return {
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
        "size": int(total) if total and total.isdigit() else None,
    }


def download(
    remote: RemoteFile, folder: str | Path, retries: int = 5, timeout: float = 60.0, backoff: float = 1.0
) -> DownloadResult:
    """Download `remote` into `folder`, resuming a partial file; return what it took."""
    folder = Path(folder)
    target, part = folder / remote.name, folder / f"{remote.name}.part"
    state_file = folder / f"{remote.name}.part.json"
    result = DownloadResult(target)
    if target.is_file() and (remote.md5 is None or md5sum(target) == remote.md5):
        return result  # already here and verified
    have = part.stat().st_size if part.is_file() else 0
    if remote.size is not None:
        require_free_space(folder, remote.size - have, f"downloading {remote.url}")
    session = requests.Session()
    last_error = "no attempt made"
    while result.attempts <= retries:
        result.attempts += 1
        have = part.stat().st_size if part.is_file() else 0
        saved = json.loads(state_file.read_text()) if state_file.is_file() and have else {}
        headers = {"Range": f"bytes={have}-"} if have else {}
        if have and (saved.get("etag") or saved.get("last_modified")):
            headers["If-Range"] = saved.get("etag") or saved["last_modified"]
        try:
            with session.get(
                remote.url, headers=headers, stream=True, timeout=(timeout, timeout)
            ) as response:
                if 400 <= response.status_code < 500 and response.status_code != 416:
                    raise DataError(
                        remote.url, f"HTTP {response.status_code} {response.reason}: not retrying"
                    )
                if response.status_code == 416 and remote.size is not None and have >= remote.size:
                    break  # already complete: verify below
                if response.status_code >= 500 or response.status_code == 416:
                    raise requests.HTTPError(f"HTTP {response.status_code} {response.reason}")
                current = _validators(response)
                resuming = response.status_code == 206 and have > 0
                if resuming and any(saved.get(k) and current[k] and saved[k] != current[k] for k in current):
                    log.warning(
                        "%s changed on the server since the partial download: starting over", remote.url
                    )
                    resuming = False
                    response.close()
                    part.unlink(missing_ok=True)
                    continue
                if not resuming and have:
                    log.warning(
                        "%s: server sent the whole file (Range not honoured): starting over", remote.url
                    )
                result.resumed = result.resumed or resuming
                state_file.write_text(json.dumps(current))
                expected = remote.size or current["size"]
                with (
                    open(part, "ab" if resuming else "wb") as handle,
                    progress_bar(
                        total=expected,
                        initial=have if resuming else 0,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=remote.name,
                    ) as progress,
                ):
                    for block in response.iter_content(CHUNK):
                        handle.write(block)
                        result.bytes_transferred += len(block)
                        progress.update(len(block))
            size = part.stat().st_size
            if remote.size is not None and size != remote.size:
                raise requests.ConnectionError(f"transfer ended at {size} of {remote.size} bytes")
            break
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.HTTPError,
            requests.exceptions.ChunkedEncodingError,
        ) as err:
            last_error = f"{type(err).__name__}: {err}"
            if result.attempts > retries:
                break
            delay = backoff * 2 ** (result.attempts - 1)
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                remote.url,
                result.attempts,
                last_error,
                delay,
            )
            time.sleep(delay)
    if not part.is_file() or (remote.size is not None and part.stat().st_size != remote.size):
        raise DataError(
            remote.url, f"download failed after {result.attempts} attempts; last error: {last_error}"
        )
    if remote.md5 is not None:
        actual = md5sum(part)
        if actual != remote.md5:
            bad = folder / f"{remote.name}.bad"
            os.replace(part, bad)
            state_file.unlink(missing_ok=True)
            raise DataError(
                remote.url,
                f"MD5 mismatch: expected {remote.md5}, got {actual}; the file is kept aside as {bad}",
            )
    os.replace(part, target)
    state_file.unlink(missing_ok=True)
    return result


def cross_check(record_url: str | None, files: list[RemoteFile], timeout: float = 10.0) -> bool:
    """Compare the pinned sizes and MD5s with the record's JSON (Zenodo: files[].key, .size,
    .checksum "md5:..."), when it can be reached. A disagreement is an error (the pins are out of
    date or the record changed); an unreachable record is only logged. Returns whether it checked.
    """
    if not record_url:
        return False
    try:
        response = requests.get(record_url, timeout=timeout)
        response.raise_for_status()
        listed = {entry["key"]: entry for entry in response.json()["files"]}
    except (requests.RequestException, ValueError, KeyError, TypeError) as err:
        log.info("record %s not checked (%s): using the pinned sizes and checksums", record_url, err)
        return False
    for file in files:
        entry = listed.get(file.name)
        if entry is None:
            raise DataError(record_url, f"the record lists no file {file.name!r} (it has {sorted(listed)})")
        md5 = str(entry.get("checksum", "")).removeprefix("md5:")
        if file.size is not None and entry.get("size") != file.size:
            raise DataError(
                record_url, f"{file.name}: the record says {entry.get('size')} bytes, params say {file.size}"
            )
        if file.md5 is not None and md5 and md5 != file.md5:
            raise DataError(record_url, f"{file.name}: the record says MD5 {md5}, params say {file.md5}")
    return True
