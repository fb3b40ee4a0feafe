"""Result sets written as a unit (descnet.io.result_set): complete old or complete new set after a failure or a
kill at every rename, no staging or temporary files left, a manifest of what descnet wrote (issue 15)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from descnet.io import MANIFEST, read_manifest, recover_result_sets, result_set
from tests.conftest import fail_at_rename

REPO = Path(__file__).resolve().parents[1]
OLD = {"a.json": "old a", "b.md": "old b", "c.png": "old c"}
NEW = {"a.json": "new a", "b.md": "new b", "c.png": "new c", "d.tex": "new d"}


def _write(folder: Path, files: dict[str, str]) -> None:
    with result_set(folder) as rs:
        for name, text in files.items():
            rs.path(name).write_text(text)


def _old_set_beside_a_users_file(folder: Path) -> Path:
    """A new result folder holding the user's ``notes.txt`` and descnet's :data:`OLD` set."""
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    _write(folder, OLD)
    return folder


def _state(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir() if p.is_file() and p.name != MANIFEST}


def _check_old_or_new(folder: Path, mine: dict[str, str]) -> str:
    state = _state(folder)
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != MANIFEST)
    assert hidden == [], hidden
    if state == {**OLD, **mine}:
        assert sorted(read_manifest(folder)) == sorted(OLD)
        return "old"
    assert state == {**NEW, **mine}, state
    assert sorted(read_manifest(folder)) == sorted(NEW)
    return "new"


def test_a_result_set_is_written_with_a_manifest_and_keeps_foreign_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _write(out, OLD)
    assert _state(out) == {**OLD, "notes.txt": "mine"}
    assert json.loads((out / MANIFEST).read_text())["files"] == sorted(OLD)
    with result_set(out, overwrite=True) as rs:
        assert sorted(rs.previous) == sorted(OLD)
        rs.path("z.json").write_text("z")
    assert _state(out) == {"z.json": "z", "notes.txt": "mine"}  # overwrite: only descnet's files go
    with result_set(out) as rs:
        rs.path("y.json").write_text("y")
    assert _state(out) == {"z.json": "z", "y.json": "y", "notes.txt": "mine"}  # no overwrite: earlier kept
    assert read_manifest(out) == ["y.json", "z.json"]


def test_an_error_in_the_block_leaves_the_old_set(tmp_path):
    out = tmp_path / "out"
    _write(out, OLD)
    with pytest.raises(RuntimeError):
        with result_set(out) as rs:
            rs.path("a.json").write_text("half")
            raise RuntimeError("boom")
    assert _check_old_or_new(out, {}) == "old"


def test_a_failure_at_every_rename_leaves_the_complete_old_or_new_set(tmp_path, monkeypatch):
    seen = {"old": 0, "new": 0}
    for k in range(1, 30):
        out = _old_set_beside_a_users_file(tmp_path / f"out{k}")
        calls = fail_at_rename(monkeypatch, k)
        try:
            _write(out, NEW)
        except OSError as err:
            assert "injected" in str(err)
        finally:
            monkeypatch.undo()
        seen[_check_old_or_new(out, {"notes.txt": "mine"})] += 1
        if calls["n"] < k:  # no rename failed: every rename point has been tried
            break
    assert seen["old"] >= 5 and seen["new"] >= 1


_KILLER = textwrap.dedent("""
    import os, sys
    import descnet.io as dio
    k, folder, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    real, calls = os.replace, [0]
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == k:
            os._exit(9)  # as SIGKILL: no clean-up runs
        return real(src, dst)
    dio.os.replace = replace
    with dio.result_set(folder) as rs:
        for name in files:
            rs.path(name).write_text("new " + name[0])
    sys.exit(3)
""")


def test_a_kill_at_every_rename_leaves_old_or_new_after_recovery(tmp_path):
    seen = {"old": 0, "new": 0}
    for k in range(1, 30):
        out = _old_set_beside_a_users_file(tmp_path / f"out{k}")
        proc = subprocess.run([sys.executable, "-c", _KILLER, str(k), str(out), *NEW], cwd=REPO,
                              capture_output=True, text=True)
        assert proc.returncode in (9, 3), proc.stderr
        recover_result_sets(out)  # what the next command writing into `out` does first
        seen[_check_old_or_new(out, {"notes.txt": "mine"})] += 1
        if proc.returncode == 3:
            break
    assert seen["old"] >= 1 and seen["new"] >= 3


def test_temporary_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    from descnet.io import atomic_path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".last.pt.{pid}.abc123.pt.tmp"
    stale.write_bytes(b"")
    other = tmp_path / f".other.pt.{pid}.x.pt.tmp"  # another target's: left to its own next write
    other.write_bytes(b"")
    alive = tmp_path / f".last.pt.{os.getppid()}.def.pt.tmp"  # a running process's: never touched
    alive.write_bytes(b"")
    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "last.pt"])


def test_the_next_result_set_cleans_up_after_a_killed_one_and_folders_get_the_umask(tmp_path):
    out = tmp_path / "out"
    _write(out, OLD)
    proc = subprocess.run([sys.executable, "-c", _KILLER, "1", str(out), *NEW], cwd=REPO, capture_output=True)
    assert proc.returncode == 9 and [p for p in out.iterdir() if p.name.startswith(".descnet-staging-")]
    old_mask = os.umask(0o022)
    try:
        with result_set(out) as rs:
            rs.path("sub/deep.txt").write_text("x")
    finally:
        os.umask(old_mask)
    assert not [p for p in out.iterdir() if p.name.startswith(".descnet-staging-")]
    assert _state(out) == OLD and (out / "sub" / "deep.txt").read_text() == "x"
    assert (out / "sub").stat().st_mode & 0o777 == 0o755
    assert sorted(read_manifest(out)) == sorted([*OLD, "sub"])


_FAIL_THEN_KILL = textwrap.dedent("""
    import os, sys
    import descnet.io as dio
    fail, kill, folder, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    real, calls = os.replace, [0]
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == fail:
            raise OSError("injected")
        if calls[0] == kill:
            os._exit(9)  # killed while rolling back
        return real(src, dst)
    dio.os.replace = replace
    try:
        with dio.result_set(folder, overwrite=True) as rs:
            for name in files:
                rs.path(name).write_text("new " + name[0])
    except OSError:
        sys.exit(4)
    sys.exit(3)
""")


def test_a_kill_while_rolling_back_after_an_error_leaves_the_old_set(tmp_path):
    count = 0
    for fail in range(2, 12):
        for extra in (1, 2, 3):
            out = _old_set_beside_a_users_file(tmp_path / f"out{fail}-{extra}")
            proc = subprocess.run([sys.executable, "-c", _FAIL_THEN_KILL, str(fail), str(fail + extra), str(out),
                                   *NEW], cwd=REPO, capture_output=True, text=True)
            assert proc.returncode in (9, 4, 3), proc.stderr
            recover_result_sets(out)
            state = _check_old_or_new(out, {"notes.txt": "mine"})
            if proc.returncode in (9, 4):
                assert state == "old"
                count += proc.returncode == 9
    assert count >= 5
