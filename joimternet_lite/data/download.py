"""Verified, resumable downloads and safe archive extraction.

Taught in notebook 12. ``download`` fetches a URL into a ``.part`` file, resumes it with an HTTP
``Range`` request after a cut connection, shows a tqdm byte bar, checks the sha256 and only then
renames it into place; a file already present and verified is not fetched again. ``safe_extract``
unpacks tar/zip archives member by member and refuses anything that could land outside the target:
absolute paths, ``..``, symbolic or hard links, device files and FIFOs. MIMIC-CXR is never
downloaded here: PhysioNet needs the user's own credentialed account (``prepare mimic-cxr`` prints
the steps).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import requests
from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import UserError
from .errors import SourceError
from .source_files import DAMAGED_ARCHIVE_ERRORS, damaged_archive

CHUNK = 1 << 20
NET_CHUNK = 1 << 16  # small reads: a cut connection loses at most this much of what arrived


class DownloadError(UserError, RuntimeError):
    """A download that failed or did not verify; the message says what to do by hand."""


class UnsafeArchiveError(SourceError):
    """An archive member that would escape the target folder or is not a regular file or folder."""


_UNSAFE_FIX = "Nothing was extracted; download the archive again from its official source and check its sha256."


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None, auth: tuple[str, str] | None = None,
             retries: int = 3, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest``, resuming a partial ``dest.part``; verify ``sha256`` (None: not yet
    published, the digest is printed so it can be recorded). Returns ``dest``."""
    dest = Path(dest)
    if dest.exists() and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 1):
        try:
            _fetch_into(url, part, auth, timeout, progress)
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            if attempt == retries:
                raise DownloadError(
                    f"{url}: download failed after {retries} tries ({err}). Run the command again to resume "
                    f"from {part}, or download the file by hand and place it at {dest}."
                ) from err
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256:
        bad = part.with_name(part.name + ".bad")
        os.replace(part, bad)
        raise DownloadError(
            f"{url}: sha256 mismatch (expected {sha256}, got {digest}); the file was kept as {bad}. "
            "Delete it and download again; if it persists, the file on the server changed: report it."
        )
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, auth, timeout: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, stream=True, headers=headers, auth=auth, timeout=timeout) as resp:
        if resp.status_code == 416:  # already complete
            return
        resp.raise_for_status()
        if have and resp.status_code != 206:  # the server ignored Range: start over
            have = 0
        total = int(resp.headers.get("Content-Length", 0)) + have or None
        with open(part, "ab" if have else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
            disable=not progress,
        ) as bar:
            for block in resp.iter_content(NET_CHUNK):
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise requests.exceptions.ChunkedEncodingError(f"connection closed at {part.stat().st_size} of {total} bytes")


def safe_extract(archive: str | Path, target: str | Path) -> list[Path]:
    """Extract a tar (any compression) or zip archive under ``target``; refuse unsafe members.

    All members are checked before anything is written. Returns the extracted files. Re-running
    skips files already extracted with the same size (idempotent). A cut or corrupt archive raises
    ``SourceError`` naming it.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            return _extract_zip(archive, target)
        return _extract_tar(archive, target)
    except DAMAGED_ARCHIVE_ERRORS as err:
        raise damaged_archive(archive, err) from err


def _extract_tar(archive: Path, target: Path) -> list[Path]:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            _check_member_name(archive, m.name, target)
            if not (m.isfile() or m.isdir()):
                kind = "link" if (m.issym() or m.islnk()) else "device or special file"
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a {kind}; refusing to extract this "
                                         f"archive. {_UNSAFE_FIX}")
        written = []
        for m in members:
            dest = target / m.name
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif not (dest.exists() and dest.stat().st_size == m.size):
                _copy_stream(tar.extractfile(m), dest)
            if m.isfile():
                written.append(dest)
        return written


def _extract_zip(archive: Path, target: Path) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_name(archive, info.filename, target)
            if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000, 0o040000):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a link or special file. "
                                         f"{_UNSAFE_FIX}")
        written = []
        for info in infos:
            dest = target / info.filename
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            if not (dest.exists() and dest.stat().st_size == info.file_size):
                with zf.open(info) as src:
                    _copy_stream(src, dest)
            written.append(dest)
        return written


def _check_member_name(archive: Path, name: str, target: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):  # "C:" too: a Windows absolute path
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract. {_UNSAFE_FIX}")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing to extract. {_UNSAFE_FIX}")
    if not (target / name).resolve().is_relative_to(target.resolve()):
        raise UnsafeArchiveError(f"{archive}: member {name!r} would land outside {target}. {_UNSAFE_FIX}")


def _copy_stream(src, dest: Path) -> None:
    """Write to a temporary name and rename, so an interrupted extraction never leaves half a file."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
