"""Resumable, atomic HTTP(S) downloads and checked archive unpacking for scripts/get_data.py.

A download is written to `<file>.part` and renamed to `<file>` only when all announced bytes have arrived,
so a file under its final name is always complete. An interrupted download is continued with an HTTP Range
request from the bytes already in `<file>.part`. Archives are tested (every member's CRC for zip files)
before anything is unpacked, and unpacked into a temporary folder that is renamed into place at the end.
Every failure raises `DataError` with one line that names the file or address and what to do.
`ArchiveLock` keeps two runs from writing the same archive: the second one stops naming the first.
"""
import contextlib
import errno
import fcntl
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Optional

import tqdm

from utils import run_folder

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
# What a download page (e.g. Google Drive's "can't scan this file for viruses") starts with.
HTML_STARTS = (b"<!doctype html", b"<html")


class DataError(RuntimeError):
    """A download, archive or layout problem, described in one line; `elsewhere` when another address may
    succeed (the server refused or could not be reached), not when a download broke off (it resumes)."""

    def __init__(self, message: str, elsewhere: bool = False) -> None:
        super().__init__(message)
        self.elsewhere = elsewhere


class ArchiveLock:
    """Exclusive lock of one download, `<archive>.lock` beside the archive, held from `acquire` to `release`.

    Like utils/run_folder.py's RunLock, a POSIX record lock: the kernel drops it when its process ends,
    however it ends, so a killed run never blocks the next one. The file holds the holder's host, pid and
    start time, and is removed on release; `acquire` checks that the file it locked is still the one under
    that name (a release may remove it between our open and our lock).
    """

    def __init__(self, archive: Path) -> None:
        self.archive = Path(archive)
        self.filename = self.archive.with_name(self.archive.name + ".lock")
        self._handle = None

    def acquire(self) -> None:
        """Take the lock; raises DataError naming the holder when another live process has it."""
        while True:
            try:
                handle = open(self.filename, "a+", encoding="utf-8")  # noqa: SIM115 -- held while we download
            except OSError as error:
                raise DataError(f"cannot create the lock file '{self.filename}': {error.strerror or error}; pass a "
                                f"--root this user can write into") from None
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                who = run_folder.describe_holder(run_folder.read_holder(handle))
                handle.close()
                raise DataError(f"'{self.archive}' is being downloaded by {who} (lock '{self.filename}'): wait for "
                                f"that run to end, or pass another --root") from None
            try:
                same = os.stat(self.filename).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()  # its holder released and removed it after we opened it: lock the new file
        run_folder.write_holder(handle)
        self._handle = handle

    def release(self) -> None:
        """Remove the lock file and unlock (removed while still locked, so no one can lock the old file)."""
        if self._handle is None:
            return
        # Already gone, or a read-only folder: closing the file releases the lock all the same.
        with contextlib.suppress(OSError):
            os.remove(self.filename)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> "ArchiveLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _space_error(path: Path, needed: Optional[int] = None) -> DataError:
    detail = f" (needs {needed / 1e9:.1f} GB more)" if needed else ""
    return DataError(f"no space left on the device of '{path.parent}' while writing '{path.name}'{detail}: free "
                     f"some space or pass another --root; what was downloaded so far is kept and resumes")


def _check_free_space(path: Path, needed: int) -> None:
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise DataError(f"'{path.parent}' has {free / 1e9:.1f} GB free but '{path.name}' needs {needed / 1e9:.1f} GB "
                        f"more: free some space or pass another --root")


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "deblur-devil get_data.py"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 -- user-given http(s) addresses
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is already complete (or longer than the file)
            raise
        raise DataError(f"HTTP {error.code} ({error.reason}) from {url}: check the address, or pass a mirror "
                        f"with --url", elsewhere=True) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataError(f"cannot reach {url}: {reason}; check the network or pass a mirror with --url",
                        elsewhere=True) from None


def _total_size(response: http.client.HTTPResponse, offset: int) -> Optional[int]:
    """The whole file's size from Content-Range (206) or Content-Length (200), if the server says."""
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) + (offset if response.status == 206 else 0) if length and length.isdigit() else None


def _web_page_error(url: str, destination: Path, why: str) -> DataError:
    return DataError(f"{url} returned a web page ({why}), not the file '{destination.name}': the address needs a "
                     f"browser (e.g. a Google-Drive download page); download it in a browser and pass "
                     f"--url file:///path/to/{destination.name}, or pass a direct mirror with --url", elsewhere=True)


def fetch(url: str, destination: Path, progress: bool = True) -> Path:
    """Download `url` to `destination` (kept if it exists), resuming `<destination>.part`; returns destination."""
    destination = Path(destination)
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    try:
        response = _open(url, offset)
    except urllib.error.HTTPError:  # 416: nothing left to fetch; the size check below decides
        response = None
    if response is None:
        partial.rename(destination)
        return destination
    with response:
        if offset and response.status != 206:  # the server ignores Range: start again
            offset = 0
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "text/html" and not destination.name.lower().endswith((".html", ".htm")):
            raise _web_page_error(url, destination, "Content-Type text/html")
        total = _total_size(response, offset)
        if total is not None:
            _check_free_space(partial, total - offset)
        mode = "ab" if offset else "wb"
        received = offset

        def read() -> bytes:
            try:
                return response.read(CHUNK_BYTES)
            except (OSError, ValueError, http.client.HTTPException) as error:  # reset, timeout, cut short
                raise DataError(f"the download of {url} broke off after {received} bytes ({error}); run the same "
                                f"command again to resume it") from None

        # The first bytes are looked at before anything is written: a web page must not become the .part file.
        chunk = read()
        if not offset and chunk.lstrip()[:16].lower().startswith(HTML_STARTS):
            raise _web_page_error(url, destination, "it starts with <html")
        try:
            with open(partial, mode) as handle, tqdm.tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                           desc=destination.name, disable=not progress) as bar:
                while chunk:
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    chunk = read()
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise _space_error(partial) from None
            raise DataError(f"cannot write '{partial}': {error.strerror or error}") from None
    if total is not None and received != total:
        raise DataError(f"the download of {url} broke off after {received} of {total} bytes; run the same command "
                        f"again to resume it")
    partial.rename(destination)
    return destination


def check_archive(archive: Path) -> None:
    """Read every member of a zip (CRC) or tar archive; a damaged one raises DataError naming it."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                bad = handle.testzip()
            if bad is not None:
                raise DataError(f"'{archive}' is damaged (member '{bad}' fails its CRC check): delete it and "
                                f"download it again")
            return
        with tarfile.open(archive) as handle:
            for member in handle:
                if member.isfile():
                    extracted = handle.extractfile(member)
                    while extracted is not None and extracted.read(CHUNK_BYTES):
                        pass
    except DataError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, ValueError) as error:
        raise DataError(f"'{archive}' is not a readable zip or tar archive ({error}): delete it and download it "
                        f"again") from None


def _safe_members(names: list, archive: Path) -> None:
    for name in names:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise DataError(f"'{archive}' holds the unsafe path '{name}': refusing to unpack it")


def _safe_links(members: list, archive: Path) -> None:
    """Tar links must point inside the archive's own tree (a symbolic link is relative to its folder)."""
    for member in members:
        if not (member.issym() or member.islnk()):
            continue
        target = Path(member.linkname)
        inside = os.path.normpath(target if member.islnk() else Path(member.name).parent / target)
        if target.is_absolute() or inside == ".." or inside.startswith(("../", "/")):
            raise DataError(f"'{archive}' holds the link '{member.name}' -> '{member.linkname}', which points outside "
                            f"the folder it unpacks into: refusing to unpack it")


def unpack(archive: Path, target: Path, arrange: Callable[[Path], Path]) -> Path:
    """Unpack `archive` into a temporary folder beside `target`, let `arrange(folder)` return the folder that
    should become `target` (e.g. the one holding `train/` and `test/`), then rename it to `target`."""
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DataError(f"'{target}' exists already: check it with --verify, or move it away to unpack again")
    staging = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                _safe_members(handle.namelist(), archive)
                handle.extractall(staging)
        else:
            with tarfile.open(archive) as handle:
                _safe_members(handle.getnames(), archive)
                _safe_links(handle.getmembers(), archive)
                handle.extractall(staging, filter="data")
        arrange(staging).rename(target)
    except tarfile.FilterError as error:  # what the checks above missed: the "data" filter refuses it
        raise DataError(f"'{archive}' holds an unsafe member ({error}): refusing to unpack it") from None
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise _space_error(target) from None
        raise DataError(f"cannot unpack '{archive}' into '{target.parent}': {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
