"""Dataset downloads: Brown (UBC Phototour), HPatches patches, HPatches sequences, HPatches task files, the Strecha
scenes.

Each dataset is a list of :class:`Resource` (one archive, unpacked into one folder under ``root``). A
download tries the resource's URLs in order (or the mirrors given by ``--mirror`` / ``DESCNET_MIRROR``,
which replace them), resumes a partial ``<root>/<archive>.part`` with an HTTP ``Range`` request, checks
size and checksum when they are known (:data:`CHECKSUMS`, the one table of them), unpacks into a temporary
folder and moves the result into place in one rename. Only urllib is used; ``file://`` URLs work too, and a
mirror that is a plain folder path (no ``scheme://``) is read as that folder (:func:`mirror_url`).

:func:`cached_digests` is how descnet's caches know their source files by content: each file's sha256,
hashed once and kept in a small JSON book with the file's size, modification and change times, hashed again
when one of them changes (or always, with ``verify``).

Resulting layout under ``root``::

    brown               -> <root>/liberty/, <root>/notredame/, <root>/yosemite/   (read by PhotoTour)
    hpatches            -> <root>/hpatches-release/<sequence>/{ref,e1..e5,h1..h5,t1..t5}.png
    hpatches-sequences  -> <root>/hpatches-sequences-release/<sequence>/{1..6}.ppm, H_1_2..H_1_6
    hpatches-tasks      -> <root>/tasks/  (splits/splits.json and the task CSVs of hpatches-benchmark)
    strecha             -> <root>/<scene>/images/0000.jpg.., gt_dense_cameras/0000.jpg.camera.. (six scenes)

The Strecha scenes (Strecha et al., "On benchmarking camera calibration and multi-view stereo for high resolution
imagery", CVPR 2008; published by EPFL's CVLab, https://www.epfl.ch/labs/cvlab/data/, for research) come from the
copy openMVG keeps for its SfM accuracy evaluation, github.com/openMVG/SfM_quality_evaluation, folder
``Benchmarking_Camera_Calibration_2008/`` (PNGs recompressed losslessly to JPEG there). All six scenes are in one
archive of that repository at a fixed commit: it is fetched once and kept until the last scene asked for is
unpacked. GitHub makes the archive on request, so its bytes (and size) are not guaranteed stable: no checksum is
recorded, the zip's own CRCs are checked when it is unpacked.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

from descnet.io import atomic_dir

__all__ = [
    "Resource", "Expected", "CHECKSUMS", "DATASETS", "MIRROR_ENV", "DownloadError", "IncompleteDownload",
    "ChecksumError", "resources", "candidate_urls", "fetch_url", "unpack", "download_resource",
    "download_dataset", "file_digest", "mirror_url", "mirror_urls", "cached_digests", "archive_still_needed",
    "STRECHA_SCENES",
]

MIRROR_ENV = "DESCNET_MIRROR"
BROWN_HOME = "http://icvl.ee.ic.ac.uk/vbalnt/"  # the original home; dead since about 2021
BROWN_CVUT = "https://cmp.felk.cvut.cz/~mishkdmy/datasets/BrownPhotoTour/"  # re-packed zips (other md5)
HPATCHES_HOME = "https://huggingface.co/datasets/vbalnt/hpatches/resolve/main/"
HPATCHES_BENCHMARK_COMMIT = "e0c993c7756d26129fef47f752f79e4cfe6681aa"
STRECHA_COMMIT = "348a981ef51112e9848acfb20004f4ed6fbc6ce3"  # openMVG/SfM_quality_evaluation
STRECHA_URLS = (f"https://codeload.github.com/openMVG/SfM_quality_evaluation/zip/{STRECHA_COMMIT}",
                f"https://github.com/openMVG/SfM_quality_evaluation/archive/{STRECHA_COMMIT}.zip")
#: the six scenes of the benchmark (fountain-P11 and entry-P10, and the castle scenes, are evaluation scenes)
STRECHA_SCENES = ("fountain-P11", "Herz-Jesus-P8", "entry-P10", "castle-P19", "castle-P30", "Herz-Jesus-P25")
_CHUNK = 1 << 20


class Expected(NamedTuple):
    """What a downloaded file must be; ``None`` = unknown, not checked."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


#: Known sizes and checksums of the files behind each URL (the only place they are recorded). Mirrors
#: re-pack archives, so a checksum belongs to a URL, not to a dataset. Unknown entries stay None.
CHECKSUMS: dict[str, Expected] = {
    # md5 of the original zips, as torchvision's PhotoTour records them
    BROWN_HOME + "liberty.zip": Expected(md5="fdd9152f138ea5ef2091746689176414"),
    BROWN_HOME + "notredame.zip": Expected(md5="509eda8535847b8c0a90bbb210c83484"),
    BROWN_HOME + "yosemite.zip": Expected(md5="533b2e8eb7ede31be40abc317b2fd4f0"),
    BROWN_CVUT + "liberty.zip": Expected(),
    BROWN_CVUT + "notredame.zip": Expected(),
    BROWN_CVUT + "yosemite.zip": Expected(),
    HPATCHES_HOME + "hpatches-release.zip": Expected(),
    HPATCHES_HOME + "hpatches-sequences-release.zip": Expected(),
    f"https://codeload.github.com/hpatches/hpatches-benchmark/zip/{HPATCHES_BENCHMARK_COMMIT}": Expected(),
    f"https://github.com/hpatches/hpatches-benchmark/archive/{HPATCHES_BENCHMARK_COMMIT}.zip": Expected(),
    # generated by GitHub on request: size and checksum not confirmed (the zip's CRCs are checked)
    **{url: Expected() for url in STRECHA_URLS},
}


@dataclass(frozen=True)
class Resource:
    """One archive to fetch and the folder it becomes.

    Attributes:
        dataset, name: e.g. ``("brown", "liberty")``.
        filename: the archive's local name under ``root`` (and its name on a ``--mirror``).
        dest: the folder created under ``root``.
        urls: where to get it, tried in order.
        member: unpack only this folder of the archive (below its single top folder, if any).
    """

    dataset: str
    name: str
    filename: str
    dest: str
    urls: tuple[str, ...]
    member: str | None = None


def _brown(name: str) -> Resource:
    return Resource("brown", name, f"{name}.zip", name, (BROWN_CVUT + f"{name}.zip", BROWN_HOME + f"{name}.zip"))


def _strecha(scene: str) -> Resource:
    return Resource("strecha", scene, f"SfM_quality_evaluation-{STRECHA_COMMIT}.zip", scene, STRECHA_URLS,
                    member=f"Benchmarking_Camera_Calibration_2008/{scene}")


DATASETS: dict[str, tuple[Resource, ...]] = {
    "brown": tuple(_brown(name) for name in ("liberty", "notredame", "yosemite")),
    "hpatches": (Resource("hpatches", "hpatches-release", "hpatches-release.zip", "hpatches-release",
                          (HPATCHES_HOME + "hpatches-release.zip",)),),
    "hpatches-sequences": (Resource("hpatches-sequences", "hpatches-sequences-release",
                                    "hpatches-sequences-release.zip", "hpatches-sequences-release",
                                    (HPATCHES_HOME + "hpatches-sequences-release.zip",)),),
    "hpatches-tasks": (Resource(
        "hpatches-tasks", "tasks", f"hpatches-benchmark-{HPATCHES_BENCHMARK_COMMIT}.zip", "tasks",
        (f"https://codeload.github.com/hpatches/hpatches-benchmark/zip/{HPATCHES_BENCHMARK_COMMIT}",
         f"https://github.com/hpatches/hpatches-benchmark/archive/{HPATCHES_BENCHMARK_COMMIT}.zip"),
        member="tasks"),),
    "strecha": tuple(_strecha(scene) for scene in STRECHA_SCENES),
}


class DownloadError(OSError):
    """A download that failed; the message says what to do."""


class IncompleteDownload(DownloadError):
    """The transfer stopped early; the ``.part`` file is kept so that the next run resumes."""


class ChecksumError(DownloadError):
    """The file arrived whole but is not the expected file; it was removed."""


def resources(dataset: str, subsets: list[str] | None = None) -> list[Resource]:
    """The resources of ``dataset`` (one of :data:`DATASETS`), restricted to ``subsets`` by name."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    known = {r.name: r for r in DATASETS[dataset]}
    if not subsets:
        return list(known.values())
    unknown = [s for s in subsets if s not in known]
    if unknown:
        raise ValueError(f"unknown {dataset} subset {unknown[0]!r} (choose from {', '.join(known)})")
    return [known[s] for s in dict.fromkeys(subsets)]


def mirror_url(mirror: str, source: str = MIRROR_ENV) -> str:
    """A mirror as a URL: ``http(s)://``, ``file://`` ... as given; a plain folder path (``/srv/data``,
    ``~/mirror``, ``data/``) as its ``file://`` URL. ``ValueError`` naming ``source`` for a path that is not a
    folder."""
    if "://" in mirror:
        return mirror
    folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{source}: {mirror!r} is neither a URL (http://, https://, file://) nor an existing "
                         "folder")
    return folder.resolve().as_uri()


def mirror_urls(filename: str, mirrors: list[str] | None = None, source: str = MIRROR_ENV) -> list[str]:
    """``<mirror>/<filename>`` for each mirror given (default: ``$DESCNET_MIRROR``, whitespace separated)."""
    if mirrors is None:
        mirrors = os.environ.get(MIRROR_ENV, "").split()
        source = MIRROR_ENV
    return [mirror_url(m, source).rstrip("/") + "/" + filename for m in mirrors]


def candidate_urls(resource: Resource, mirrors: list[str] | None = None) -> list[str]:
    """URLs to try in order: ``<mirror>/<filename>`` for each mirror when given (or in ``$DESCNET_MIRROR``,
    whitespace separated; URLs or plain folder paths, :func:`mirror_url`), else the resource's official URLs."""
    urls = mirror_urls(resource.filename, mirrors, "--mirror")
    return urls or list(resource.urls)


# ----------------------------------------------------------------------------------------- one file
def fetch_url(url: str, path: str | os.PathLike, *, expected: Expected | None = None, progress: bool = True,
              timeout: float = 30.0) -> Path:
    """Download ``url`` to ``path``, resuming ``<path>.part``; returns ``path`` once complete and verified.

    Raises :class:`IncompleteDownload` (``.part`` kept), :class:`ChecksumError` (file removed) or
    :class:`DownloadError` (cannot reach the host, HTTP error).
    """
    from tqdm.auto import tqdm

    path = Path(path)
    expected = expected or Expected()
    part = path.with_name(path.name + ".part")
    meta_path = path.with_name(path.name + ".part.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(meta_path)
    if part.exists() and meta.get("url") != url:  # a partial file of another URL (mirrors differ)
        part.unlink()
    offset = part.stat().st_size if part.exists() else 0

    request = urllib.request.Request(url, headers={"User-Agent": "descnet"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if meta.get("validator"):
            request.add_header("If-Range", meta["validator"])
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset and _complete(part, expected, meta):
            response = None  # the .part already holds the whole file
        elif err.code == 416 and offset:  # the .part does not fit the file on the server: start over
            part.unlink()
            return fetch_url(url, path, expected=expected, progress=progress, timeout=timeout)
        else:
            raise DownloadError(f"HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DownloadError(_unreachable(url, getattr(err, "reason", err), path)) from None

    if response is not None:
        with response:
            status = response.status or 200  # None for file:// URLs
            if status == 206 and _range_start(response) != offset:  # not the range we asked for
                response.close()
                part.unlink()
                return fetch_url(url, path, expected=expected, progress=progress, timeout=timeout)
            if status == 206:
                mode = "ab"
            else:  # the server sent the whole file (no Range support, or the file changed): start over
                offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else expected.size
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            _write_meta(meta_path, {"url": url, "validator": validator, "total": total})
            received = offset
            try:
                with open(part, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                   unit_divisor=1024, desc=path.name, disable=not progress,
                                                   leave=False) as bar:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            except (http.client.HTTPException, OSError) as err:  # IncompleteRead, reset, timeout
                raise IncompleteDownload(_stopped(url, received, total, part, err)) from None
            if total is not None and received < total:
                raise IncompleteDownload(_stopped(url, received, total, part, None))

    _verify(part, url, expected)
    os.replace(part, path)
    meta_path.unlink(missing_ok=True)
    return path


def _complete(part: Path, expected: Expected, meta: dict) -> bool:
    size = expected.size or meta.get("total")
    return size is not None and part.stat().st_size == size


def _range_start(response) -> int | None:
    content_range = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _verify(part: Path, url: str, expected: Expected) -> None:
    """Size and checksums; a mismatch removes the file (resuming it would never fix it)."""
    size = part.stat().st_size
    problem = None
    if expected.size is not None and size != expected.size:
        problem = f"size {size} bytes, expected {expected.size}"
    else:
        for algorithm in ("sha256", "md5"):
            want = getattr(expected, algorithm)
            if want:
                got = file_digest(part, algorithm)
                if got != want.lower():
                    problem = f"{algorithm} {got}, expected {want}"
                    break
    if problem:
        part.unlink(missing_ok=True)
        part.with_name(part.name + ".json").unlink(missing_ok=True)
        raise ChecksumError(f"{url}: the downloaded file is corrupt or not the expected one ({problem}); "
                            f"it was removed")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``sha256``, ``md5``, any :mod:`hashlib` name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cached_digests(paths: dict[str, Path], book: str | os.PathLike, verify: bool = False) -> dict[str, str | None]:
    """``{key: sha256 of the file}`` of ``paths`` (``None`` for a missing file), from the JSON ``book`` when
    the file's size, modification time and change time are those recorded with its digest, else hashed (and
    recorded). ``verify``: hash every file again. The change time cannot be set back by hand, so an edit
    that keeps the size and restores the modification time is hashed again too. The book is rewritten
    (atomically) when it changed; a book that cannot be written is not an error (the digests are)."""
    book = Path(book)
    try:
        known = json.loads(book.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    out, changed = {}, False
    for key, path in paths.items():
        try:
            st = path.stat()
        except FileNotFoundError:
            out[key] = None
            continue
        where = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        entry = known.get(where)
        if not verify and isinstance(entry, dict) and entry.get("stat") == stamp and entry.get("sha256"):
            out[key] = entry["sha256"]
            continue
        out[key] = file_digest(path)
        known[where] = {"stat": stamp, "sha256": out[key]}
        changed = True
    if changed:
        from descnet.io import atomic_path

        try:
            with atomic_path(book) as tmp:
                tmp.write_text(json.dumps(known, indent=0, sort_keys=True))
        except OSError:
            pass
    return out


def _unreachable(url: str, reason: object, path: Path) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return f"cannot read {urllib.request.url2pathname(parsed.path)}: {reason}"
    return (f"cannot reach {parsed.hostname}: {reason}; are you offline? download {url} by hand into "
            f"{path.parent} (as {path.name}) and run the command again")


def _stopped(url: str, received: int, total: int | None, part: Path, err: BaseException | None) -> str:
    of = f" of {total}" if total is not None else ""
    why = f" ({err})" if err else ""
    return (f"download of {url} stopped after {received}{of} bytes{why}; the partial file {part} is kept: "
            f"run the same command again to resume")


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta))


# -------------------------------------------------------------------------------------------- unpack
def unpack(archive: str | os.PathLike, dest: str | os.PathLike, *, member: str | None = None,
           progress: bool = True) -> Path:
    """Unpack a zip or tar archive into the folder ``dest``, atomically (all or nothing).

    A single top-level folder in the archive is stripped (``liberty/patches0000.bmp`` and
    ``patches0000.bmp`` both end up as ``dest/patches0000.bmp``); with ``member``, only that folder (below
    the top folder) is unpacked, as ``dest``'s content. An existing ``dest`` is replaced only on success.
    """
    from tqdm.auto import tqdm

    archive, dest = Path(archive), Path(dest)
    kind = _archive_kind(archive)
    try:
        with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive)) as arc:
            entries = arc.infolist() if kind == "zip" else arc.getmembers()
            names = [e.filename if kind == "zip" else e.name for e in entries]
            keep = [not _junk(n) for n in names]
            strip = _common_top(n for n, k in zip(names, keep) if k)
            prefix = (strip + "/" if strip else "") + (member.strip("/") + "/" if member else "")
            selected = [e for e, n, k in zip(entries, names, keep) if k and n.startswith(prefix)]
            if kind == "zip":
                links = [e.filename for e in selected if _zip_is_link(e)]
                if links:
                    raise ValueError(f"{archive}: the entry {links[0]!r} is a symbolic link; descnet unpacks only "
                                     "files and folders from archives (a re-packed or hostile archive?): unpack it "
                                     "by hand if you trust it")
            if not selected:
                where = f"a folder {prefix!r}" if prefix else "any files"
                raise ValueError(f"{archive}: the archive does not contain {where}")
            with atomic_dir(dest) as tmp:
                staging = tmp / ".descnet-unpack"
                for entry in tqdm(selected, desc=f"unpack {archive.name}", unit="file", disable=not progress,
                                  leave=False):
                    if kind == "zip":
                        arc.extract(entry, staging)
                    else:
                        _extract_tar_member(arc, entry, staging)
                content = staging / prefix if prefix else staging
                for child in list(content.iterdir()):
                    os.replace(child, tmp / child.name)
                shutil.rmtree(staging)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise ValueError(f"{archive}: broken {kind} archive ({err}); delete it and download it again") from None
    except (NotADirectoryError, IsADirectoryError, FileExistsError) as err:
        raise ValueError(f"{archive}: cannot unpack it: its entries clash ({err.strerror}: an entry is both a file "
                         "and a folder); delete it and download it again") from None
    return dest


def _zip_is_link(entry: zipfile.ZipInfo) -> bool:
    import stat

    return entry.create_system == 3 and stat.S_ISLNK(entry.external_attr >> 16)


def _archive_kind(archive: Path) -> str:
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except OSError:
        pass
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    raise ValueError(f"{archive}: neither a zip nor a tar archive (corrupt download?); delete it and "
                     f"download it again")


def _junk(name: str) -> bool:
    return name.startswith("__MACOSX/") or name.endswith("/.DS_Store") or name == ".DS_Store"


def _common_top(names) -> str | None:
    """The single top-level folder all entries live in, or None."""
    tops = set()
    nested = False
    for name in names:
        parts = name.strip("/").split("/")
        tops.add(parts[0])
        nested = nested or len(parts) > 1
        if len(tops) > 1:
            return None
    return tops.pop() if len(tops) == 1 and nested else None


def _extract_tar_member(arc: tarfile.TarFile, entry: tarfile.TarInfo, staging: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        arc.extract(entry, staging, filter="data")
        return
    target = (staging / entry.name).resolve()  # Python without extraction filters: refuse escapes
    if not (entry.isfile() or entry.isdir()) or not str(target).startswith(str(staging.resolve())):
        raise ValueError(f"refusing to unpack {entry.name!r} (a link or a path outside the archive folder)")
    arc.extract(entry, staging)


# ------------------------------------------------------------------------------------------ datasets
def download_resource(resource: Resource, root: str | os.PathLike, *, mirrors: list[str] | None = None,
                      checksums: dict[str, Expected] | None = None, force: bool = False,
                      keep_archive: bool = False, progress: bool = True, timeout: float = 30.0,
                      refetch: bool | None = None) -> Path:
    """Fetch and unpack one resource into ``<root>/<resource.dest>``; returns that folder.

    An existing folder is kept (unless ``force``). An archive already in ``root`` (e.g. downloaded by hand)
    is used as is, except with ``force``: then it (and any partial download) is removed and fetched again
    (``refetch=False``: keep an archive this run has just fetched for another resource of it).
    URLs are tried in order; an interrupted transfer stops at once so that the next run resumes it. The
    archive is deleted after unpacking unless ``keep_archive``.
    """
    root = Path(root)
    dest = root / resource.dest
    if dest.exists() and not force:
        return dest
    checksums = CHECKSUMS if checksums is None else checksums
    archive = root / resource.filename
    if force if refetch is None else refetch:  # "download again" means the archive too: a stale one must go
        for suffix in ("", ".part", ".part.json"):
            archive.with_name(archive.name + suffix).unlink(missing_ok=True)
    if not archive.is_file():
        failures = []
        for url in candidate_urls(resource, mirrors):
            try:
                fetch_url(url, archive, expected=checksums.get(url), progress=progress, timeout=timeout)
                break
            except IncompleteDownload:
                raise
            except DownloadError as err:
                failures.append(str(err))
        else:
            raise DownloadError(f"could not download {resource.dataset} {resource.name}:\n  "
                                + "\n  ".join(failures))
    unpack(archive, dest, member=resource.member, progress=progress)
    if not keep_archive:
        archive.unlink()
    return dest


def archive_still_needed(resource: Resource, later: list[Resource], root: str | os.PathLike,
                         force: bool = False) -> bool:
    """Whether a ``later`` resource still to be unpacked (its folder absent, or ``force``) comes from the same
    archive as ``resource`` (the Strecha scenes share one): then the archive is kept after ``resource``."""
    return any(r.filename == resource.filename and (force or not (Path(root) / r.dest).exists()) for r in later)


def download_dataset(dataset: str, root: str | os.PathLike, subsets: list[str] | None = None,
                     log: Callable[[str], None] | None = None, **options) -> list[Path]:
    """Download every resource of ``dataset`` (or the named ``subsets``) into ``root``; returns the folders.

    ``options`` go to :func:`download_resource` (``mirrors``, ``force``, ``keep_archive``, ``progress``...). An
    archive several resources share is fetched once (:func:`archive_still_needed`), with ``force`` too.
    ``log``: called with a line per resource (already present, downloading, done); ``None``: silent.
    """
    say = log or (lambda line: None)
    force = options.get("force", False)
    chosen = resources(dataset, subsets)
    folders, fetched = [], set()
    for i, r in enumerate(chosen):
        dest = Path(root) / r.dest
        if dest.exists() and not force:
            say(f"{r.name}: already present at {dest} (--force to download again)")
            folders.append(dest)
            continue
        say(f"{r.name}: downloading {r.filename} ...")
        keep = options.get("keep_archive", False) or archive_still_needed(r, chosen[i + 1:], root, force)
        folders.append(download_resource(r, root, **{**options, "keep_archive": keep},
                                         refetch=force and r.filename not in fetched))
        fetched.add(r.filename)
        say(f"{r.name}: done -> {dest}")
    return folders
