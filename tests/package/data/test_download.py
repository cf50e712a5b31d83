"""Verified resumable downloads from a local HTTP server, and hostile archives (notebook 12)."""

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import pytest

from joimternet_lite.data.download import (
    DownloadError,
    UnsafeArchiveError,
    download,
    safe_extract,
)
from joimternet_lite.data.errors import SourceError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; the first ``cut_once`` request stops after half the bytes."""

    state = {"cut_once": False, "ranges": []}

    def do_GET(self):  # noqa: N802 (http.server API)
        start = 0
        if rng := self.headers.get("Range"):
            self.state["ranges"].append(rng)
            start = int(rng.removeprefix("bytes=").split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.state["cut_once"]:
            self.state["cut_once"] = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # cut the connection mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.state = {"cut_once": False, "ranges": []}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()


def test_download_verifies_and_skips_when_present(server, tmp_path):
    dest = download(server, tmp_path / "f.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    Handler.state["cut_once"] = True  # would break a second fetch: it must not happen
    download(server, dest, SHA, progress=False)
    assert Handler.state["cut_once"] is True


def test_resume_after_cut_connection_uses_range(server, tmp_path):
    Handler.state["cut_once"] = True
    dest = download(server, tmp_path / "f.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    (resumed_at,) = [int(r.removeprefix("bytes=").rstrip("-")) for r in Handler.state["ranges"]]
    assert len(PAYLOAD) // 4 < resumed_at <= len(PAYLOAD) // 2  # most of what arrived was kept


def test_resume_of_a_partial_file_left_by_a_killed_run(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])
    assert download(server, tmp_path / "f.bin", SHA, progress=False).read_bytes() == PAYLOAD
    assert Handler.state["ranges"] == ["bytes=1000-"]


def test_checksum_mismatch_keeps_nothing_in_place(server, tmp_path):
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(server, tmp_path / "f.bin", "0" * 64, progress=False)
    assert not (tmp_path / "f.bin").exists() and (tmp_path / "f.bin.part.bad").exists()


def test_unreachable_server_says_what_to_do(tmp_path):
    with pytest.raises(DownloadError, match="download the file by hand and place it at"):
        download("http://127.0.0.1:9/x", tmp_path / "x", None, retries=1, timeout=2, progress=False)


def _tar_with(tmp_path, add) -> str:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("ok/readme.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"hi"))
        add(tar)
    return path


def _member(name, kind=tarfile.REGTYPE, link=""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        info.size = 1 if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(b"x") if kind == tarfile.REGTYPE else None)
    return add


@pytest.mark.parametrize("add, message", [
    (_member("/etc/evil"), "absolute path"),
    (_member("ok/../../evil"), r"contains '\.\.'"),
    (_member("ok/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    (_member("ok/hard", tarfile.LNKTYPE, "ok/readme.txt"), "is a link"),
    (_member("ok/dev", tarfile.CHRTYPE), "device or special file"),
    (_member("ok/fifo", tarfile.FIFOTYPE), "device or special file"),
])
def test_hostile_tar_members_are_refused_before_writing(tmp_path, add, message):
    archive = _tar_with(tmp_path, add)
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "ok").exists() and not (tmp_path / "evil").exists()


def test_good_tar_and_zip_extract_idempotently(tmp_path):
    archive = _tar_with(tmp_path, lambda tar: None)
    assert [p.name for p in safe_extract(archive, tmp_path / "out")] == ["readme.txt"]
    assert safe_extract(archive, tmp_path / "out")[0].read_bytes() == b"hi"
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("a/b.txt", "z")
    assert (tmp_path / "zout" / "a" / "b.txt") in safe_extract(tmp_path / "z.zip", tmp_path / "zout")
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("../escape.txt", "z")
    with pytest.raises(UnsafeArchiveError, match="'..'"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "zout")


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_truncated_archive_names_file_and_fix(tmp_path, kind):
    if kind == "tar":
        archive = tmp_path / "NLMCXR_png.tgz"
        with tarfile.open(archive, "w:gz") as tar:
            for i in range(20):
                info = tarfile.TarInfo(f"png/{i}.png")
                info.size = 4096
                tar.addfile(info, io.BytesIO(bytes(range(256)) * 16))
    else:
        archive = tmp_path / "reports.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("a.txt", "z" * 5000)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(SourceError, match=rf"{archive.name}: .*truncated or damaged.*Download it again"):
        safe_extract(archive, tmp_path / "out")
