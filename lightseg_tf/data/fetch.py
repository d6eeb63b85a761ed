"""Download the public releases: progress bar, resume, checksum, unpacking, atomic result.

Zenodo serves each record's files, and the whole record as one zip ("files-archive"). Set
``LIGHTSEG_FETCH_URL`` to use a mirror (the tests point it at a loopback server). Without
the internet the error says how to download by hand.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lightseg_tf.core.io import sha256_file
from lightseg_tf.core.log import LOG
from lightseg_tf.errors import LightsegError

DEFAULT_BASE = "https://zenodo.org"


@dataclass(frozen=True)
class Release:
    """A public dataset release: where it is, what to download, and what to cite."""

    name: str
    record: int
    path: str  # URL path under the base, e.g. /api/records/N/files-archive
    filename: str  # name of the downloaded file
    sha256: str | None  # known checksum of the download, when published
    unpack: bool
    reader: str
    citation: str

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.path

    @property
    def page(self) -> str:
        return f"{DEFAULT_BASE}/records/{self.record}"


RELEASES = {r.name: r for r in (
    Release("hc18", 1327317, "/api/records/1327317/files-archive", "hc18_1327317.zip", None, True, "hc18",
            "van den Heuvel et al., PLoS ONE 13(8): e0200412, 2018"),
    Release("psfhs", 10969427, "/api/records/10969427/files-archive", "psfhs_10969427.zip", None, True, "psfhs",
            "Chen et al., Scientific Data 11: 436, 2024"),
    Release("fetal-head-biometry", 8265464, "/api/records/8265464/files-archive", "fetal_head_8265464.zip",
            None, True, "fetal-head-biometry", "Alzubaidi et al., LightSeg fetal head biometry dataset, 2023"),
    Release("medsegbench-abdomenus", 13358372, "/records/13358372/files/abdomenus_256.npz?download=1",
            "abdomenus_256.npz", None, False, "medsegbench-npz", "Kus & Aydin, MedSegBench, Sci Data 2024"),
)}



def _by_hand(rel: Release, dest: Path) -> str:
    return (f"download it by hand: open {rel.page}, download "
            f"{'all files (the zip of the record)' if rel.unpack else rel.filename}, save it as "
            f"{dest / rel.filename} and rerun this command (it then checks and unpacks the file)")


def download(url: str, target: Path, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``target``, resuming ``target.part`` with an HTTP Range request."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if have and resp.status != 206:  # the server ignored the range: start again
            have = 0
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name)
        with part.open("ab" if have else "wb") as f:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                f.write(chunk)
                if bar:
                    bar.update(len(chunk))
        if bar:
            bar.close()
    if total is not None and part.stat().st_size != total:
        raise LightsegError(f"{url}: download incomplete ({part.stat().st_size} of {total} bytes); rerun to resume")
    part.replace(target)
    return target


def _check_member(name: str, archive: Path) -> None:
    """Refuse an archive member whose path is absolute or climbs out of the destination."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
        raise LightsegError(f"{archive}: member {name!r} would be written outside the destination; refused. "
                            "It is not the release: delete it and fetch again")


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        bad = z.testzip()
        if bad:
            raise LightsegError(f"{archive}: corrupt member {bad}; delete the file and fetch again")
        for member in z.namelist():
            _check_member(member, archive)
        z.extractall(into)


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as t:
        for member in t.getmembers():
            _check_member(member.name, archive)
            if not (member.isfile() or member.isdir()):  # links and devices have no place in a release
                raise LightsegError(f"{archive}: member {member.name!r} is a link or device; refused. "
                                    "It is not the release: delete it and fetch again")
        t.extractall(into, filter="data")


def _aside(path: Path) -> Path:
    """A free name beside ``path`` to keep it under: NAME.before-fetch, NAME.before-fetch-2, ..."""
    k, target = 1, path.with_name(f"{path.name}.before-fetch")
    while target.exists() or target.is_symlink():
        k += 1
        target = path.with_name(f"{path.name}.before-fetch-{k}")
    return target


def unpack(archive: Path, dest: Path, force: bool = False) -> list[tuple[Path, Path]]:
    """Extract a zip/tar into ``dest`` through a temporary folder (nothing partial left).

    Nothing already in ``dest`` is deleted: when an unpacked top-level name exists there the
    call stops (LightsegError), or with ``force`` renames the existing one to
    ``NAME.before-fetch`` first.

    Returns:
        ``[(existing path, where it was kept), ...]`` for what ``force`` moved aside.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    kept = []
    try:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, tmp)
            elif tarfile.is_tarfile(archive):
                _extract_tar(archive, tmp)
            else:
                raise LightsegError(f"{archive}: not a zip or tar archive")
            # Zenodo record archives may contain further zips (e.g. training_set.zip): unpack those too.
            for inner in list(tmp.rglob("*.zip")):
                _extract_zip(inner, inner.parent)
                inner.unlink()
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise LightsegError(f"{archive}: cannot unpack ({exc}); delete the file and fetch again") from None
        items = sorted(tmp.iterdir())
        clash = [dest / item.name for item in items if (dest / item.name).exists() or (dest / item.name).is_symlink()]
        if clash and not force:
            raise LightsegError(f"{clash[0]}: already exists and fetch replaces nothing it did not create; "
                                "move it away, or pass --force to keep it as "
                                f"{clash[0].name}.before-fetch and unpack beside it")
        for existing in clash:
            kept.append((existing, _aside(existing)))
            existing.rename(kept[-1][1])
        for item in items:
            item.rename(dest / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return kept


def fetch(name: str, dest: str | Path, sha256: str | None = None, base: str | None = None,
          progress: bool = True, timeout: float = 30.0, force: bool = False) -> Path:
    """Download (resuming), verify and unpack the release ``name`` into ``dest``.

    Args:
        sha256: expected checksum of the download (overrides the registry's).
        base: server base URL (default ``$LIGHTSEG_FETCH_URL`` or Zenodo).
        force: unpack even where ``dest`` already holds a same-named file or folder, which is
            kept as ``NAME.before-fetch`` (see :func:`unpack`); never deleted.

    Returns:
        ``dest``.
    """
    if name not in RELEASES:
        raise LightsegError(f"unknown release {name!r}; choose one of {sorted(RELEASES)}")
    rel = RELEASES[name]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / rel.filename
    url = rel.url(base or os.environ.get("LIGHTSEG_FETCH_URL", DEFAULT_BASE))
    downloaded = not target.exists()  # a file the user put there by hand is theirs: never deleted
    if downloaded:
        try:
            download(url, target, timeout=timeout, progress=progress)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LightsegError(f"cannot download {url} ({reason}); {_by_hand(rel, dest)}") from None
    expected = sha256 or rel.sha256
    if expected:
        got = sha256_file(target)
        if got != expected:
            if downloaded:
                target.unlink()
            raise LightsegError(f"{target}: SHA-256 {got[:16]}... is not the expected {expected[:16]}...; "
                                + ("the file was removed, fetch again" if downloaded else
                                   "it is not the release: replace it with the one from " + rel.page))
    if rel.unpack:
        for existing, kept in unpack(target, dest, force):
            LOG.warning("%s existed: kept as %s", existing, kept)
        if downloaded:
            target.unlink()
    return dest
