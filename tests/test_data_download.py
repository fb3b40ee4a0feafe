"""Downloads against a local HTTP server on 127.0.0.1 (with Range support): full download and unpack, resume,
truncated transfers, corrupt archives, offline, mirrors, file:// URLs and the CLI."""
from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from descnet.data import download as dl
from descnet.data.download import (DownloadError, Expected, IncompleteDownload, Resource, download_resource,
                                   fetch_url, resources, unpack)

FILES = {f"liberty/patches{i:04d}.bmp": bytes(range(256)) * (40 + i) for i in range(3)}
FILES["liberty/info.txt"] = b"".join(b"%d 0\n" % (i // 2) for i in range(500))


def _zip(files: dict[str, bytes], stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


ARCHIVE = _zip(FILES)


def _resource(url: str, **kw) -> Resource:
    return Resource("brown", "liberty", "liberty.zip", "liberty", (url,), **kw)


def _check_unpacked(folder: Path, files=FILES, prefix="liberty/") -> None:
    got = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == {name[len(prefix):]: data for name, data in files.items()}


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ------------------------------------------------------------------------------------------ downloads
def test_full_download_and_unpack(server, tmp_path):
    server.files["/liberty.zip"] = ARCHIVE
    url = server.base + "/liberty.zip"
    checksums = {url: Expected(size=len(ARCHIVE), sha256=hashlib.sha256(ARCHIVE).hexdigest(),
                               md5=hashlib.md5(ARCHIVE).hexdigest())}
    dest = download_resource(_resource(url), tmp_path, checksums=checksums, progress=False)
    assert dest == tmp_path / "liberty"
    _check_unpacked(dest)  # the archive's single top folder is stripped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liberty"]  # archive, .part and staging gone
    # an existing folder is left alone: no request at all
    server.requests.clear()
    download_resource(_resource(url), tmp_path, progress=False)
    assert server.requests == []


def test_mirror_option_and_environment(server, tmp_path, monkeypatch):
    server.files["/pub/liberty.zip"] = ARCHIVE
    (liberty,) = resources("brown", ["liberty"])
    download_resource(liberty, tmp_path / "a", mirrors=[server.base + "/pub/"], progress=False)
    _check_unpacked(tmp_path / "a" / "liberty")
    monkeypatch.setenv("DESCNET_MIRROR", f"{server.base}/missing {server.base}/pub")
    download_resource(liberty, tmp_path / "b", progress=False)
    _check_unpacked(tmp_path / "b" / "liberty")
    assert [path for path, _ in server.requests[-2:]] == ["/missing/liberty.zip", "/pub/liberty.zip"]  # in order


def test_resume_from_partial_file(server, tmp_path):
    server.files["/liberty.zip"] = ARCHIVE
    url = server.base + "/liberty.zip"
    done = len(ARCHIVE) // 3
    (tmp_path / "liberty.zip.part").write_bytes(ARCHIVE[:done])
    (tmp_path / "liberty.zip.part.json").write_text(json.dumps({"url": url, "validator": '"v1"'}))
    checksums = {url: Expected(sha256=hashlib.sha256(ARCHIVE).hexdigest())}
    download_resource(_resource(url), tmp_path, checksums=checksums, progress=False)
    assert server.requests == [("/liberty.zip", f"bytes={done}-")]
    assert server.bytes_sent == len(ARCHIVE) - done
    _check_unpacked(tmp_path / "liberty")


def test_resume_without_range_support_starts_over(server, tmp_path):
    server.files["/liberty.zip"] = ARCHIVE
    server.ranges = False
    url = server.base + "/liberty.zip"
    (tmp_path / "liberty.zip.part").write_bytes(b"garbage that must not survive")
    (tmp_path / "liberty.zip.part.json").write_text(json.dumps({"url": url}))
    download_resource(_resource(url), tmp_path, progress=False)
    assert server.bytes_sent == len(ARCHIVE)
    _check_unpacked(tmp_path / "liberty")


def test_partial_file_of_another_url_is_discarded(server, tmp_path):
    server.files["/liberty.zip"] = ARCHIVE
    (tmp_path / "liberty.zip.part").write_bytes(ARCHIVE[:100])
    (tmp_path / "liberty.zip.part.json").write_text(json.dumps({"url": "http://elsewhere/liberty.zip"}))
    download_resource(_resource(server.base + "/liberty.zip"), tmp_path, progress=False)
    assert server.requests == [("/liberty.zip", None)]
    _check_unpacked(tmp_path / "liberty")


def test_complete_partial_file_and_416(server, tmp_path):
    server.files["/liberty.zip"] = ARCHIVE
    url = server.base + "/liberty.zip"
    (tmp_path / "liberty.zip.part").write_bytes(ARCHIVE)
    (tmp_path / "liberty.zip.part.json").write_text(json.dumps({"url": url, "total": len(ARCHIVE)}))
    download_resource(_resource(url), tmp_path, progress=False)
    assert server.bytes_sent == 0
    _check_unpacked(tmp_path / "liberty")


def test_truncated_response_keeps_part_for_resume(server, tmp_path):
    server.files["/liberty.zip"] = ARCHIVE
    server.truncate_at = 1000
    url = server.base + "/liberty.zip"
    with pytest.raises(IncompleteDownload, match=rf"stopped after 1000 of {len(ARCHIVE)} bytes.*resume"):
        download_resource(_resource(url), tmp_path, progress=False)
    assert (tmp_path / "liberty.zip.part").read_bytes() == ARCHIVE[:1000]
    assert not (tmp_path / "liberty.zip").exists() and not (tmp_path / "liberty").exists()
    server.truncate_at = None  # the next run resumes where it stopped
    download_resource(_resource(url), tmp_path, progress=False)
    assert server.requests[-1] == ("/liberty.zip", "bytes=1000-")
    _check_unpacked(tmp_path / "liberty")


def test_checksum_mismatch_moves_nothing_into_place(server, tmp_path):
    corrupt = bytearray(ARCHIVE)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.files["/liberty.zip"] = bytes(corrupt)
    url = server.base + "/liberty.zip"
    checksums = {url: Expected(sha256=hashlib.sha256(ARCHIVE).hexdigest())}
    with pytest.raises(DownloadError, match=r"corrupt or not the expected one \(sha256 [0-9a-f]{64}, expected"):
        download_resource(_resource(url), tmp_path, checksums=checksums, progress=False)
    assert list(tmp_path.iterdir()) == []  # no folder, no archive, no .part to resume into
    with pytest.raises(DownloadError, match=r"size \d+ bytes, expected 5"):
        download_resource(_resource(url), tmp_path, checksums={url: Expected(size=5)}, progress=False)
    md5 = {url: Expected(md5=hashlib.md5(ARCHIVE).hexdigest())}
    with pytest.raises(DownloadError, match="md5"):
        download_resource(_resource(url), tmp_path, checksums=md5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_archive_without_checksum_is_detected_by_crc(server, tmp_path):
    archive = bytearray(_zip(FILES, stored=True))
    position = archive.index(FILES["liberty/info.txt"][:20])
    archive[position] ^= 0xFF  # flip a stored byte: only the zip's CRC can tell
    server.files["/liberty.zip"] = bytes(archive)
    with pytest.raises(ValueError, match=r"liberty\.zip: broken zip archive"):
        download_resource(_resource(server.base + "/liberty.zip"), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liberty.zip"]  # nothing unpacked, no staging left


def test_offline_gives_a_clear_message(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/liberty.zip"
    with pytest.raises(DownloadError) as info:
        download_resource(_resource(url), tmp_path, progress=False, timeout=5)
    message = str(info.value)
    assert "cannot reach 127.0.0.1" in message and "are you offline?" in message
    assert f"download {url} by hand into {tmp_path}" in message
    assert list(tmp_path.iterdir()) == []


def test_http_error_then_next_url(server, tmp_path):
    server.files["/b/liberty.zip"] = ARCHIVE
    resource = Resource("brown", "liberty", "liberty.zip", "liberty",
                        (server.base + "/a/liberty.zip", server.base + "/b/liberty.zip"))
    download_resource(resource, tmp_path, progress=False)
    _check_unpacked(tmp_path / "liberty")
    with pytest.raises(DownloadError, match=r"HTTP 404 .* from .*/a/liberty\.zip"):
        fetch_url(server.base + "/a/liberty.zip", tmp_path / "x.zip", progress=False)


def test_file_urls(tmp_path):
    source = tmp_path / "src" / "liberty.zip"
    source.parent.mkdir()
    source.write_bytes(ARCHIVE)
    download_resource(_resource(source.as_uri()), tmp_path / "out", progress=False, keep_archive=True)
    _check_unpacked(tmp_path / "out" / "liberty")
    assert (tmp_path / "out" / "liberty.zip").read_bytes() == ARCHIVE
    with pytest.raises(DownloadError, match="cannot read"):
        fetch_url((tmp_path / "nope.zip").as_uri(), tmp_path / "nope.zip", progress=False)


def test_archive_put_by_hand_is_used(tmp_path):
    (tmp_path / "liberty.zip").write_bytes(ARCHIVE)
    url = f"http://127.0.0.1:{_closed_port()}/liberty.zip"  # never contacted
    download_resource(_resource(url), tmp_path, progress=False)
    _check_unpacked(tmp_path / "liberty")
    assert not (tmp_path / "liberty.zip").exists()


def test_force_downloads_again_instead_of_reusing_a_stale_archive(tmp_path):
    source = tmp_path / "src" / "liberty.zip"
    source.parent.mkdir()
    source.write_bytes(ARCHIVE)
    out = tmp_path / "out"
    out.mkdir()
    (out / "liberty").mkdir()
    (out / "liberty.zip").write_bytes(b"a stale, broken archive")
    download_resource(_resource(source.as_uri()), out, progress=False, force=True)
    _check_unpacked(out / "liberty")
    assert not (out / "liberty.zip").exists()


# --------------------------------------------------------------------------------------------- unpack
def test_unpack_member_folder_like_hpatches_tasks(tmp_path):
    top = f"hpatches-benchmark-{dl.HPATCHES_BENCHMARK_COMMIT}/"
    files = {top + "README.md": b"readme", top + "python/hpatch.py": b"code",
             top + "tasks/splits/splits.json": b'{"a": {}}', top + "tasks/retr_queries_split-a.csv": b"1,2\n"}
    (tmp_path / "bench.zip").write_bytes(_zip(files))
    (tasks,) = resources("hpatches-tasks")
    unpack(tmp_path / "bench.zip", tmp_path / tasks.dest, member=tasks.member, progress=False)
    _check_unpacked(tmp_path / "tasks", {k: v for k, v in files.items() if "/tasks/" in k}, prefix=top + "tasks/")
    with pytest.raises(ValueError, match="does not contain a folder"):
        unpack(tmp_path / "bench.zip", tmp_path / "other", member="nothing", progress=False)
    assert not (tmp_path / "other").exists()


def test_unpack_tar_and_flat_zip(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "a.tar.gz").write_bytes(buffer.getvalue())
    _check_unpacked(unpack(tmp_path / "a.tar.gz", tmp_path / "from_tar", progress=False))
    flat = {name.split("/")[1]: data for name, data in FILES.items()}  # the original Brown zips are flat
    (tmp_path / "flat.zip").write_bytes(_zip(flat))
    _check_unpacked(unpack(tmp_path / "flat.zip", tmp_path / "from_flat", progress=False), flat, prefix="")
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"junk\.zip: neither a zip nor a tar"):
        unpack(tmp_path / "junk.zip", tmp_path / "junk", progress=False)


def test_resources_table():
    assert [r.name for r in resources("brown")] == ["liberty", "notredame", "yosemite"]
    (liberty,) = resources("brown", ["liberty"])
    assert liberty.urls == ("https://cmp.felk.cvut.cz/~mishkdmy/datasets/BrownPhotoTour/liberty.zip",
                            "http://icvl.ee.ic.ac.uk/vbalnt/liberty.zip")
    assert dl.CHECKSUMS[liberty.urls[1]].md5 == "fdd9152f138ea5ef2091746689176414"  # torchvision's
    assert all(url in dl.CHECKSUMS for rs in dl.DATASETS.values() for r in rs for url in r.urls)
    assert resources("hpatches")[0].urls == (
        "https://huggingface.co/datasets/vbalnt/hpatches/resolve/main/hpatches-release.zip",)
    assert "e0c993c7756d26129fef47f752f79e4cfe6681aa" in resources("hpatches-tasks")[0].urls[0]
    with pytest.raises(ValueError, match="unknown brown subset 'paris'"):
        resources("brown", ["paris"])
    with pytest.raises(ValueError, match="unknown dataset"):
        resources("oxford")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_download(server, tmp_path, capsys):
    from descnet.cli.main import main

    server.files["/liberty.zip"] = ARCHIVE
    root = tmp_path / "brown"
    assert main(["data", "download", "brown", "--root", str(root), "--subset", "liberty",
                 "--mirror", server.base]) == 0
    _check_unpacked(root / "liberty")
    assert main(["data", "download", "brown", "--root", str(root), "--subset", "liberty",
                 "--mirror", server.base]) == 0
    assert "already present" in capsys.readouterr().out
    port = _closed_port()
    assert main(["data", "download", "brown", "--root", str(root), "--subset", "notredame",
                 "--mirror", f"http://127.0.0.1:{port}", "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach 127.0.0.1" in err and "are you offline?" in err and "notredame.zip" in err
    assert not (root / "notredame").exists()


def test_strecha_scenes_share_one_archive_fetched_once(server, tmp_path, capsys):
    """openMVG's repository archive holds the six scenes: a download of several scenes fetches it once, unpacks
    each scene into ROOT/<scene>, and removes the archive after the last one."""
    from descnet.cli.main import main
    from descnet.geometry.cameras import read_strecha_scene

    scenes = resources("strecha")
    assert [r.name for r in scenes] == ["fountain-P11", "Herz-Jesus-P8", "entry-P10", "castle-P19", "castle-P30",
                                        "Herz-Jesus-P25"]
    assert len({r.filename for r in scenes}) == 1 and dl.STRECHA_COMMIT in scenes[0].urls[0]
    assert scenes[0].urls[0].startswith("https://codeload.github.com/openMVG/SfM_quality_evaluation/zip/")
    top = f"SfM_quality_evaluation-{dl.STRECHA_COMMIT}/Benchmarking_Camera_Calibration_2008"
    camera = b"2759.48 0 1520.69\n0 2764.16 1006.81\n0 0 1\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n0 0 0\n3072 2048\n"
    files = {f"{top}/{scene}/{kind}": data for scene in ("fountain-P11", "entry-P10", "castle-P19")
             for kind, data in (("images/0000.jpg", scene.encode()), ("gt_dense_cameras/0000.jpg.camera", camera))}
    files[f"SfM_quality_evaluation-{dl.STRECHA_COMMIT}/README.md"] = b"readme"
    server.files[f"/{scenes[0].filename}"] = _zip(files)
    root = tmp_path / "strecha"
    assert main(["data", "download", "strecha", "--root", str(root), "--subset", "fountain-P11", "entry-P10",
                 "--mirror", server.base, "--quiet"]) == 0
    assert len(server.requests) == 1  # one archive for both scenes
    for scene in ("fountain-P11", "entry-P10"):
        assert (root / scene / "images" / "0000.jpg").read_bytes() == scene.encode()
    assert not (root / "castle-P19").exists() and not (root / scenes[0].filename).exists()  # archive removed
    cameras = read_strecha_scene(root / "fountain-P11")
    assert list(cameras) == ["0000.jpg"] and cameras["0000.jpg"].K[0, 0] == 2759.48
    # the library function does the same
    folders = dl.download_dataset("strecha", tmp_path / "lib", ["castle-P19", "fountain-P11"], mirrors=[server.base],
                                  progress=False)
    assert [f.name for f in folders] == ["castle-P19", "fountain-P11"] and len(server.requests) == 2
    assert not (tmp_path / "lib" / scenes[0].filename).exists()
    # --force downloads again, the shared archive once for both scenes
    assert main(["data", "download", "strecha", "--root", str(root), "--subset", "fountain-P11", "entry-P10",
                 "--mirror", server.base, "--quiet", "--force"]) == 0
    assert len(server.requests) == 3 and not (root / scenes[0].filename).exists()
