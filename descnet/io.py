"""Small file helpers shared by every command: atomic writes, result sets written as a unit, JSON output.

Outputs are written to a temporary name in the destination folder and renamed into place, so an
interrupted command never leaves a half-written file and never destroys the previous version. Temporary
files are named ``.NAME.PID.*.tmp``; the next write of ``NAME`` removes those of processes that died.

A command that writes several files writes them through :func:`result_set`: staged in a hidden folder of
the result folder, moved in together after a commit record, rolled back on an error, and finished (or
dropped) by the next command after a kill; the result folder's ``.descnet-manifest.json`` lists what
descnet wrote there, so ``--overwrite`` removes only that, and a file of the same name that descnet did not
write is never replaced (:class:`ForeignFileError`).

One writer at a time: :func:`output_lock` (used by :func:`result_set` and the growing HDF5 files) holds a
lock file ``.NAME.descnet-lock`` beside the output (``.descnet-lock`` inside a result folder) naming the
process, host and command; a second writer is refused with that name (:class:`OutputLockedError`). The lock
is an ``fcntl`` lock, so the kernel releases it when its process dies; a lock file left by a killed process
is taken over (and removed) by the next writer.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["atomic_path", "atomic_dir", "write_json", "read_json", "user_cache_dir", "check_output_parents",
           "result_set", "ResultSet", "read_manifest", "recover_result_sets", "MANIFEST", "remove_stale_temporaries",
           "read_text_rows", "output_lock", "OutputLockedError", "ForeignFileError", "check_foreign_files",
           "earlier_result_files", "one_run_per_folder"]


def read_text_rows(path: str | os.PathLike, what: str) -> list[tuple[int, list[str]]]:
    """The rows of a small text list file: ``[(line number, white-space separated fields), ...]``, blank lines
    and ``#`` comments skipped. ``what`` names the content in errors (``"image list"``, ``"pair file"``)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (expected a {what})") from None
    return [(number, line.split()) for number, line in enumerate(lines, 1)
            if line.strip() and not line.strip().startswith("#")]


def user_cache_dir() -> Path:
    """descnet's cache folder: ``$DESCNET_CACHE``, else ``$XDG_CACHE_HOME/descnet``, else ``~/.cache/descnet``.

    ``ValueError`` naming the variable when the path (or a path above it) is a file, not a folder."""
    if os.environ.get("DESCNET_CACHE"):
        folder, source = Path(os.environ["DESCNET_CACHE"]).expanduser(), "DESCNET_CACHE"
    else:
        base = os.environ.get("XDG_CACHE_HOME")
        source = "XDG_CACHE_HOME" if base else "the home folder's .cache"
        folder = Path(base or Path.home() / ".cache").expanduser() / "descnet"
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"{source}: {path} is a file, not a folder; point {source} at a folder "
                                 "for descnet's cache")
            break
    return folder


def check_output_parents(path: str | os.PathLike, what: str = "--out") -> None:
    """Check up front (before any work) that ``path`` can be created: the nearest existing path above it
    must be a folder (not a file) we can write into. ``what`` names the option in the error."""
    path = Path(path)
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {path}: {parent} is a file, not a folder; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{what} {path}: cannot write into {parent} (permission denied); choose another path")
            return


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` left next to ``path`` in processes that were
    killed (``.NAME.PID.*.tmp`` whose process no longer runs); returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``, on error removed.

    ``suffix`` (default: the suffix of ``path``) keeps libraries that look at the extension happy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.",
                               suffix=(path.suffix if suffix is None else suffix) + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes the file 0600; give it the mode a plain open() would
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it the mode a plain mkdir would
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


# ------------------------------------------------------------------------------- one writer at a time

LOCK_SUFFIX = ".descnet-lock"


class OutputLockedError(ValueError):
    """Another process is writing the same output (its lock file names it)."""


class ForeignFileError(ValueError):
    """A file descnet would replace was not written by descnet (not in the folder's manifest, not in
    descnet's file format): it is left alone and the command refused."""


def _lock_file(path: Path, folder: bool) -> Path:
    return path / LOCK_SUFFIX if folder else path.parent / f".{path.name}{LOCK_SUFFIX}"


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text())
        return (f"process {info['pid']} on host {info['host']}, since {info['since']}: "
                f"{info.get('command', '?')}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its name yet)"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, folder: bool = False, what: str = "--out") -> Iterator[Path]:
    """Hold the write lock of the output ``path`` (a file, or with ``folder=True`` a result folder, which
    must exist) for the block; yields the lock file.

    ``OutputLockedError`` naming the holder (pid, host, start time, command) and ``what`` when another
    process holds it. The lock is ``fcntl.flock`` on the lock file: released by the kernel when its
    process dies, so a lock file left by a killed run is taken over, never a reason to refuse.
    """
    import fcntl

    path = Path(path)
    lock = _lock_file(path, folder)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(f"{what} {path}: being written by {_holder(lock)}; wait until it ends, or "
                                    "write to another output") from None
        try:  # the holder before us may have removed the file between our open and our lock: retry then
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise OutputLockedError(f"{what} {path}: could not take the lock {lock} (other writers keep taking it)")
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "?"}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def one_run_per_folder(param: str = "out") -> Any:
    """Decorator of a library function that writes a result folder (its argument ``param``): the whole call
    holds the folder's run lock ``.NAME.descnet-lock`` beside it (:func:`output_lock`), so a second run into
    the same folder is refused at its start, naming the first, instead of racing it (the result set's own lock
    only covers the final move). A folder whose parent cannot hold the lock (read-only) runs without it."""
    import functools
    import inspect

    def decorate(function: Any) -> Any:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = Path(signature.bind(*args, **kwargs).arguments[param])
            try:
                hold = output_lock(out)
                hold.__enter__()
            except PermissionError:
                if not out.is_dir():
                    raise
                return function(*args, **kwargs)
            try:
                return function(*args, **kwargs)
            finally:
                hold.__exit__(None, None, None)

        return wrapper

    return decorate


def _remove_free_lock(lock: Path) -> None:
    """Remove a lock file nobody holds (left by a killed process)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(lock)):
            os.unlink(lock)
    except OSError:
        pass
    finally:
        os.close(fd)


def earlier_result_files(folder: str | os.PathLike, marker: str, key: str, names: Iterable[str],
                         value: Any = None) -> list[str]:
    """The ``names`` an older descnet (before manifests) wrote into ``folder``: all of them when the JSON file
    ``marker`` there is descnet's (a dict with ``key``, equal to ``value`` when given), else none. For
    :func:`result_set`'s ``earlier``; a folder with a manifest needs none."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return []
    try:
        payload = json.loads((folder / marker).read_text())
    except (OSError, ValueError):
        return []
    if isinstance(payload, dict) and key in payload and (value is None or payload[key] == value):
        return list(names)
    return []


def check_foreign_files(folder: str | os.PathLike, names: Iterable[str], earlier: Iterable[str] = ()) -> None:
    """Refuse (:class:`ForeignFileError`, naming it) when one of ``names`` exists in ``folder`` but descnet did
    not write it there: not listed in the folder's :data:`MANIFEST` (nor in ``earlier``, the names an older
    descnet wrote without a manifest). Call it up front, before any work; :func:`result_set` checks again."""
    folder = Path(folder)
    owned = set(read_manifest(folder)) if (folder / MANIFEST).is_file() else set(earlier)
    for name in names:
        if name not in owned and _present(folder / name):
            raise ForeignFileError(f"{folder / name}: exists and descnet did not write it (it is not in "
                                   f"{folder / MANIFEST}); descnet never replaces other files: move it away or "
                                   "choose another output folder")


# ------------------------------------------------------------------------------- result sets as a unit

#: the file listing what descnet wrote into a result folder (``--overwrite`` removes only these)
MANIFEST = ".descnet-manifest.json"
_STAGING = ".descnet-staging-"
_COMMIT = "commit.json"
_ROLLBACK = "rollback"


class ResultSet:
    """The staging side of :func:`result_set`: write the files of a command under :attr:`dir` (same
    relative names as in the result folder); they are moved into the folder together at the end.

    Attributes: ``folder`` (the result folder), ``dir`` (the staging folder, ``folder/.descnet-staging-*/new``),
    ``previous`` (the names the manifest of the folder listed before this command: descnet's earlier files).
    """

    def __init__(self, folder: Path, staging: Path, previous: list[str]) -> None:
        self.folder, self.staging, self.dir, self.previous = folder, staging, staging / "new", previous
        self.dropped: set[str] = set()

    def drop(self, name: str) -> None:
        """Remove descnet's earlier result ``name`` from the folder with this set (an earlier model that the new
        set has no successor for); a name descnet did not write there is left alone."""
        self.dropped.add(name)

    def path(self, name: str) -> Path:
        """Where to write the result ``name`` (a relative file or folder name)."""
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def read_manifest(folder: str | os.PathLike) -> list[str]:
    """The names descnet wrote into ``folder`` (its :data:`MANIFEST`; empty when there is none)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return []
    try:
        files = json.loads(path.read_text()).get("files", [])
    except (ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and _safe_name(f)]


def _safe_name(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_result_sets(folder: str | os.PathLike) -> None:
    """Finish or undo the result sets of killed commands in ``folder``: a staging folder whose commit record
    was written is moved in (the complete new set), one without it is removed (the old set stays), one
    killed while it rolled back after an error finishes its roll-back. Staging folders of running processes
    are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    _remove_free_lock(folder / LOCK_SUFFIX)
    for staging in sorted(folder.glob(f"{_STAGING}*")):
        pid = staging.name[len(_STAGING):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        if (staging / _COMMIT).is_file():
            try:
                record = json.loads((staging / _COMMIT).read_text())
            except ValueError:
                record = None
            if record is not None and (staging / _ROLLBACK).exists():
                _roll_back(folder, staging, record)
            elif record is not None:
                _move_in(folder, staging, record, rollback=False)
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(folder: Path, staging: Path, record: dict, rollback: bool = True) -> None:
    """Move the new files of ``record`` into ``folder`` (earlier versions to ``staging/old``), remove the
    names of ``record['remove']``, write the manifest. On an error (``rollback``) the old set is restored."""
    old = staging / "old"
    old.mkdir(exist_ok=True)
    try:
        for name in record["files"]:
            src, dst = staging / "new" / name, folder / name
            if not _present(src):
                continue  # moved before a kill (roll forward)
            dst.parent.mkdir(parents=True, exist_ok=True)
            _set_aside(dst, old / name)
            os.replace(src, dst)
        for name in record["remove"]:
            _set_aside(folder / name, old / name)
        _write_manifest(folder, staging, record["manifest"])
    except BaseException:
        if rollback:
            (staging / _ROLLBACK).touch()  # a kill from here on: the next command finishes the roll-back
            _roll_back(folder, staging, record)
        raise


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _set_aside(path: Path, backup: Path) -> None:
    if _present(path):
        backup.parent.mkdir(parents=True, exist_ok=True)
        _discard(backup)
        os.replace(path, backup)


def _roll_back(folder: Path, staging: Path, record: dict) -> None:
    """Undo :func:`_move_in` (also half-done, after a kill): earlier versions back from ``staging/old``;
    a name that had no earlier version (``record['fresh']``) is removed again. Repeatable."""
    old = staging / "old"
    for name in [*record["files"], *record["remove"]]:
        target = folder / name
        if _present(old / name):
            _discard(target)
            os.replace(old / name, target)
        elif name in record.get("fresh", ()):
            _discard(target)


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif _present(path):
        path.unlink()


def _write_manifest(folder: Path, staging: Path, files: list[str]) -> None:
    """Write the manifest in the staging folder and rename it into ``folder`` (a kill leaves no temp file)."""
    tmp = staging / MANIFEST
    tmp.write_text(json.dumps({"descnet": 1, "files": sorted(files)}, indent=2) + "\n")
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, folder / MANIFEST)


@contextlib.contextmanager
def result_set(folder: str | os.PathLike, overwrite: bool = False, earlier: Iterable[str] = (),
               old_staging: Iterable[str] = ()) -> Iterator[ResultSet]:
    """Write the files of one command into ``folder`` as a unit: all new, or (after an error or a kill at
    any moment) all as before.

    Files are written under the yielded :class:`ResultSet`'s ``dir`` (a hidden staging folder in ``folder``);
    when the block ends without an error, a commit record is written and the files are moved in (each
    earlier version set aside, restored on an error). The folder's :data:`MANIFEST` lists every name
    descnet wrote there. A later :func:`result_set` (or :func:`recover_result_sets`) finishes a move
    that was killed after its commit record, and removes staging folders of runs killed before it.

    ``overwrite``: also remove the names of the earlier manifest that the new set does not hold (what
    descnet wrote there before; never other files). Otherwise earlier results stay beside the new ones.
    ``earlier``: the names descnet wrote in a folder without a manifest (an output of an older version).
    ``old_staging``: glob patterns of the staging folders older versions used (``.hpatches-*``), removed.

    A name of the new set that exists in ``folder`` but is not descnet's (not in the manifest, or in ``earlier``
    when there is none) is refused before anything moves (:func:`check_foreign_files`). One writer at a time
    (:func:`output_lock` on the folder).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with output_lock(folder, folder=True):
        with _result_set(folder, overwrite, list(earlier), old_staging) as results:
            yield results


@contextlib.contextmanager
def _result_set(folder: Path, overwrite: bool, earlier: list[str], old_staging: Iterable[str]) -> Iterator[ResultSet]:
    recover_result_sets(folder)
    for pattern in old_staging:
        for stale in folder.glob(pattern):
            if stale.is_dir() and stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=folder))
    (staging / "new").mkdir()
    previous = read_manifest(folder) if (folder / MANIFEST).is_file() else \
        [n for n in earlier if _safe_name(n) and (folder / n).exists()]
    results = ResultSet(folder, staging, previous)
    try:
        yield results
        _fix_modes(results.dir)
        files = sorted(p.name for p in results.dir.iterdir())
        check_foreign_files(folder, files, previous)
        remove = sorted((set(previous) - set(files)) if overwrite else (set(previous) & results.dropped - set(files)))
        manifest = sorted((set(previous) - set(remove)) | set(files))
        fresh = [name for name in files if not _present(folder / name)]  # no earlier version to restore
        record = {"files": files, "remove": remove, "manifest": manifest, "fresh": fresh}
        with atomic_path(staging / _COMMIT) as tmp:
            tmp.write_text(json.dumps(record))
        _move_in(folder, staging, record)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fix_modes(root: Path) -> None:
    """Give the staged folders the mode a plain mkdir would (``mkdtemp`` makes 0700)."""
    mode = 0o777 & ~_umask()
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, mode)
