"""Fetching files into the cache: atomic, sha256-verified, archives unpacked safely.

A file is streamed to a temporary name beside its target while hashing, and renamed into place
only when the digest matches; on a mismatch nothing is kept. `.tar.gz`/`.tgz` archives are
unpacked into a temporary folder that is renamed into place, refusing members that would land
outside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from weft.datasets._reader import DataError

__all__ = ["cache_dir", "download", "sha256_of", "unpack"]

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where downloads go: $WEFT_CACHE, else $XDG_CACHE_HOME/weft, else ~/.cache/weft."""
    if "WEFT_CACHE" in os.environ:
        return Path(os.environ["WEFT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "weft"


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: str | os.PathLike, sha256: str, *, timeout: float = 60) -> Path:
    """Download `url` to `target` unless a file with the right sha256 is already there.

    The target appears only once complete and verified; a digest mismatch deletes the partial
    file and raises, naming the URL, the expected and the received digest.
    """
    target = Path(target)
    expected = sha256.lower()
    if target.is_file() and sha256_of(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if got != expected:
            raise DataError(
                f"sha256 mismatch for {url}: expected {expected}, got {got}; nothing was kept. "
                "The file changed upstream or the download was corrupted: retry, or fix the "
                "catalog's sha256 if the new file is trusted"
            )
        os.replace(tmp, target)
    except urllib.error.HTTPError as err:
        raise DataError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"cannot download {url}: {getattr(err, 'reason', err)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def unpack(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a tar archive into the folder `target` (skipped when it exists), atomically."""
    archive, target = Path(archive), Path(target)
    if target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive)
            tar.extractall(tmp, members=members)
        os.replace(tmp, target)
    except tarfile.TarError as err:
        raise DataError(f"cannot unpack {archive}: {err}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
        raise DataError(
            f"{archive} holds {member.name!r}, which is a link or lies outside the archive's "
            "folder; refusing to unpack it"
        )
