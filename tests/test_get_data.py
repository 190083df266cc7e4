"""scripts/get_data.py against a local HTTP server (Range support, request log, injected faults): download,
resume, integrity, layout, server and disk errors, two runs at once, unsafe archives, web pages, --root's
default, --verify. Nothing comes from the internet."""
import contextlib
import hashlib
import http.server
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.helpers import run_main, subprocess_env
from tools.synthetic_gopro import make_gopro_nah, make_gopro_su

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("get_data", REPO / "scripts" / "get_data.py")
get_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(get_data)


class _Server(http.server.ThreadingHTTPServer):
    """Serves `files`; logs (path, Range header) per request; can cut the first response after `cut_after`
    bytes (a forced disconnect), hold every response after `hold_after` bytes until `go` is set, answer
    `status` instead, or send `content_type`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: Dict[str, bytes] = {}
        self.requests: List[tuple] = []
        self.cut_after: Optional[int] = None
        self.hold_after: Optional[int] = None
        self.go = threading.Event()
        self.status: Optional[int] = None
        self.content_type: Optional[str] = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        server: _Server = self.server
        name = self.path.lstrip("/")
        requested = self.headers.get("Range")
        server.requests.append((name, requested))
        if server.status is not None or name not in server.files:
            self.send_error(server.status or 404)
            return
        body = server.files[name]
        start = int(requested.split("=")[1].split("-")[0]) if requested else 0
        self.send_response(206 if requested else 200)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        if server.content_type is not None:
            self.send_header("Content-Type", server.content_type)
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(body[start:start + server.cut_after])
            server.cut_after = None
            self.close_connection = True
            return
        if server.hold_after is not None:
            self.wfile.write(body[start:start + server.hold_after])
            self.wfile.flush()
            server.go.wait(timeout=120)
            start += server.hold_after
        self.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, per test.
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield running
    running.go.set()  # a held response ends
    running.shutdown()
    running.server_close()


def _zip(folder: Path, prefix: str = "") -> bytes:
    """A zip of `folder`'s files with paths relative to its parent (or under `prefix`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + str(path.relative_to(folder.parent)))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def nah_tree(tmp_path_factory) -> Path:
    return make_gopro_nah(str(tmp_path_factory.mktemp("nah")), width=32, height=24, num_frames=4, train_sequences=2,
                          test_sequences=1, seed=0, sub_frames=3)


def _get(*argv: str) -> tuple:
    """get_data.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = get_data.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _error_lines(text: str) -> List[str]:
    return [line for line in text.splitlines() if "error:" in line]


def test_download_unpack_verify_and_train(server, nah_tree, tmp_path):
    server.files["GOPRO_Large.zip"] = _zip(nah_tree)
    root = tmp_path / "datasets"
    code, out, err = _get("gopro_nah", "--root", str(root), "--url", server.url("GOPRO_Large.zip"))
    assert code == 0, err
    assert (root / "GOPRO_Large" / "train" / "GOPR9000_00_00" / "blur" / "000001.png").is_file()
    assert not (root / "GOPRO_Large.zip").exists() and not list(root.glob("*.part"))  # archive removed
    assert not list(root.glob("*.lock"))  # the download's lock file goes with it
    assert "train" in out and "8" in out.split("train", 1)[1].splitlines()[0]  # 2 sequences x 4 frames
    # Generated data is usable but not the published dataset: never "complete" next to "(differs)".
    assert "differs from the published totals" in out and "is complete" not in out and "CC BY 4.0" in out
    assert server.requests == [("GOPRO_Large.zip", None)]
    # Again: nothing is downloaded, the tree is checked.
    code, out, _ = _get("gopro_nah", "--root", str(root), "--url", server.url("GOPRO_Large.zip"))
    assert code == 0 and len(server.requests) == 1 and "exists already" in out
    # A training run starts on it.
    result = run_main("--model=DBN", "--loss=DBNLoss", "--optimizer=Adam", "--total_epochs=1", "--cuda=false",
                      "--training_dataset=GoProNahTrain", f"--training_dataset_root={root / 'GOPRO_Large'}",
                      "--training_dataset_random_crop=[16, 16]", "--training_dataset_num_workers=0",
                      "--training_dataset_num_examples=2", "--training_dataset_num_samples_per_example=1",
                      f"--save={tmp_path / 'run'}")
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "run" / "checkpoint_latest_.ckpt").is_file()


def test_a_cut_download_resumes_with_a_range_request(server, nah_tree, tmp_path):
    body = _zip(nah_tree)
    server.files["GOPRO_Large.zip"] = body
    server.cut_after = len(body) // 2
    root = tmp_path / "datasets"
    url = server.url("GOPRO_Large.zip")
    code, _, err = _get("gopro_nah", "--root", str(root), "--url", url, "--keep_archive")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "broke off" in lines[0] and "run the same command again" in lines[0]
    assert (root / "GOPRO_Large.zip.part").stat().st_size == len(body) // 2
    assert not (root / "GOPRO_Large.zip").exists() and not (root / "GOPRO_Large").exists()
    code, _, err = _get("gopro_nah", "--root", str(root), "--url", url, "--keep_archive")
    assert code == 0, err
    assert server.requests == [("GOPRO_Large.zip", None), ("GOPRO_Large.zip", f"bytes={len(body) // 2}-")]
    assert hashlib.sha256((root / "GOPRO_Large.zip").read_bytes()).digest() == hashlib.sha256(body).digest()
    assert (root / "GOPRO_Large" / "test").is_dir()


def test_a_damaged_archive_is_one_line_and_removed(server, nah_tree, tmp_path):
    body = bytearray(_zip(nah_tree))
    header = body.index(b"PK\x03\x04", 100)  # a member's compressed bytes after the second local header
    body[header + 60:header + 80] = bytes(20)
    server.files["GOPRO_Large.zip"] = bytes(body)
    root = tmp_path / "datasets"
    code, _, err = _get("gopro_nah", "--root", str(root), "--url", server.url("GOPRO_Large.zip"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "GOPRO_Large.zip" in lines[0], err
    assert "damaged" in lines[0] or "not a readable" in lines[0]
    assert not (root / "GOPRO_Large.zip").exists() and not (root / "GOPRO_Large").exists()
    assert not list(root.glob(".*unpacking"))


def test_nesting_is_found_and_a_wrong_layout_is_one_line(server, nah_tree, tmp_path):
    server.files["nested.zip"] = _zip(nah_tree, prefix="download/")  # download/GOPRO_Large/train/...
    root = tmp_path / "datasets"
    code, _, err = _get("gopro_nah", "--root", str(root), "--url", server.url("nested.zip"))
    assert code == 0, err
    assert (root / "GOPRO_Large" / "train").is_dir()

    server.files["wrong.zip"] = _zip(nah_tree / "train")  # train/<SEQ>/...: no test split
    code, _, err = _get("gopro_nah", "--root", str(tmp_path / "other"), "--url", server.url("wrong.zip"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "does not hold the GOPRO_Large layout" in lines[0], err
    assert "train/" in lines[0]

    # An existing tree one level too deep: --verify and the training start both name the inner folder.
    outer = tmp_path / "deep" / "GOPRO_Large"
    shutil.copytree(nah_tree, outer / "GOPRO_Large")
    code, _, err = _get("gopro_nah", "--root", str(tmp_path / "deep"), "--verify")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and f"pass the inner folder '{outer / 'GOPRO_Large'}'" in lines[0]
    result = run_main("--model=DBN", "--loss=DBNLoss", "--cuda=false", "--training_dataset=GoProNahTrain",
                      f"--training_dataset_root={outer}", f"--save={tmp_path / 'run'}")
    assert result.returncode != 0 and f"found '{outer / 'GOPRO_Large' / 'train'}'" in result.stdout + result.stderr


def test_server_errors_and_a_full_disk_are_one_line(server, tmp_path, monkeypatch):
    server.status = 500
    code, _, err = _get("gopro_nah", "--root", str(tmp_path), "--url", server.url("GOPRO_Large.zip"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "HTTP 500" in lines[0] and "--url" in lines[0]
    code, _, err = _get("gopro_nah", "--root", str(tmp_path), "--url", "http://127.0.0.1:9/GOPRO_Large.zip")
    assert code == 1 and "cannot reach" in _error_lines(err)[0]

    server.status = None
    server.files["GOPRO_Large.zip"] = b"x" * 5000
    # A destination with too little room (simulated: a real full disk needs a small mount, not available here).
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10000, 9000, 1000))
    code, _, err = _get("gopro_nah", "--root", str(tmp_path), "--url", server.url("GOPRO_Large.zip"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "needs" in lines[0] and "free" in lines[0]
    assert not (tmp_path / "GOPRO_Large.zip").exists()


def test_no_space_while_writing_keeps_the_partial_download(server, tmp_path, monkeypatch):
    import errno

    server.files["GOPRO_Large.zip"] = b"x" * 5000
    real_open = open

    class _Full(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *args, **kwargs):
        if str(path).endswith(".part") and "b" in mode and ("a" in mode or "w" in mode):
            return _Full()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    code, _, err = _get("gopro_nah", "--root", str(tmp_path), "--url", server.url("GOPRO_Large.zip"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "no space left" in lines[0] and "GOPRO_Large.zip.part" in lines[0]


def test_verify_reports_counts_and_deep_names_unreadable_frames(nah_tree, tmp_path):
    root = tmp_path / "datasets"
    shutil.copytree(nah_tree, root / "GOPRO_Large")
    code, out, err = _get("gopro_nah", "--root", str(root), "--verify")
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("train", "test"))}
    assert rows["train"][:2] == ["2", "8"] and rows["test"][:2] == ["1", "4"]
    assert "22 / 2103 (differs)" in out  # the published GOPRO_Large totals, for comparison
    assert "is complete" not in out and "differs from the published totals" in out
    code, out, err = _get("gopro_nah", "--root", str(root), "--verify", "--deep")
    assert code == 0 and "--deep: decoded 24 frames, all readable" in out, err  # (8 + 4) x blur and sharp
    broken = root / "GOPRO_Large" / "test" / "GOPR9500_00_00" / "sharp" / "000002.png"
    broken.write_bytes(b"\x89PNG broken")
    assert _get("gopro_nah", "--root", str(root), "--verify")[0] == 0  # the cheap check reads no pixels
    code, _, err = _get("gopro_nah", "--root", str(root), "--verify", "--deep")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and str(broken) in lines[0]
    (root / "GOPRO_Large" / "test" / "GOPR9500_00_00" / "blur" / "000003.png").unlink()
    code, _, err = _get("gopro_nah", "--root", str(root), "--verify")
    assert code == 1 and "3 frames in blur/ but 4 in sharp/" in err


def test_su_verify_accepts_generated_data_and_checks_the_validation_sequences(tmp_path):
    base = make_gopro_su(str(tmp_path), width=32, height=24, num_frames=4, train_sequences=1, valid_sequences=1,
                         qualitative_sequences=1, seed=0, sub_frames=3)
    assert base == tmp_path / "DeepVideoDeblurring_Dataset"
    # The generator's tree (one of Su's ten validation sequences) is usable: a note, not an error.
    code, out, err = _get("gopro_su", "--root", str(tmp_path), "--verify", "--deep")
    assert code == 0 and not _error_lines(err), err
    assert "quantitative" in out and "qualitative" in out
    note = next(line for line in out.splitlines() if line.startswith("note:"))
    assert "9 of Su's 10 validation sequences" in note and "IMG_0049" in note and "IMG_0030" not in note
    assert "differs from the published totals" in out and "is complete" not in out
    assert "--deep: decoded 208 frames, all readable" in out  # IMG_0030 98 x 2, IMG_9000 4 x 2, IMG_8000 4
    # A validation sequence too short for Su's validation frames, and none at all, are errors.
    for frame in range(50, 98):
        (base / "quantitative_datasets" / "IMG_0030" / "input" / f"{frame:05d}.jpg").unlink()
        (base / "quantitative_datasets" / "IMG_0030" / "GT" / f"{frame:05d}.jpg").unlink()
    code, _, err = _get("gopro_su", "--root", str(tmp_path), "--verify")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "'IMG_0030'" not in lines[0] and "fewer than 98 frames" in lines[0]
    shutil.rmtree(base / "quantitative_datasets" / "IMG_0030")
    code, _, err = _get("gopro_su", "--root", str(tmp_path), "--verify")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "no validation sequence" in lines[0] and "IMG_0030" in lines[0]


def test_prewarping_networks_unpack_where_the_scripts_read_them(server, constant_flow_pwcnet_checkpoint, tmp_path):
    folder = tmp_path / "release" / "prewarping_networks"
    folder.mkdir(parents=True)
    shutil.copy(constant_flow_pwcnet_checkpoint, folder / "pwcnet.ckpt")
    server.files["prewarping_networks.zip"] = _zip(folder)
    experiments = tmp_path / "experiments"
    code, out, err = _get("prewarping_networks", "--root", str(experiments), "--url",
                          server.url("prewarping_networks.zip"))
    assert code == 0, err
    assert (experiments / "prewarping_networks" / "pwcnet.ckpt").is_file() and "pwcnet.ckpt" in out
    (experiments / "prewarping_networks" / "flownet1s.ckpt").write_bytes(b"not a checkpoint")
    code, _, err = _get("prewarping_networks", "--root", str(experiments), "--verify")
    assert code == 1 and "flownet1s.ckpt" in _error_lines(err)[0]


def test_the_built_in_table_names_every_documented_source():
    assert sorted(get_data.SOURCES) == ["flyingchairs", "gopro_nah", "gopro_su", "prewarping_networks", "sintel"]
    assert get_data.SOURCES["gopro_nah"].urls == (
        "https://dl.dropboxusercontent.com/s/rwlliuyk513bwum/GOPRO_Large.zip",)
    assert get_data.SOURCES["gopro_su"].urls[1].endswith("/fxied15l3xlxm79/DeepVideoDeblurring_Dataset.zip")
    assert all(url.startswith(("http://", "https://")) for s in get_data.SOURCES.values() for url in s.urls)
    assert os.path.basename(get_data.SOURCES["flyingchairs"].extra[0][0]) == "FlyingChairs_train_val.txt"


def test_flow_datasets_verify(tmp_path):
    from tools.synthetic_flow import make_flyingchairs, make_sintel

    data = tmp_path / "FlyingChairs_release" / "data"
    make_flyingchairs(str(data), num_examples=3, height=16, width=16)
    code, out, err = _get("flyingchairs", "--root", str(tmp_path), "--verify")
    assert code == 0, err
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("pairs")] == [["pairs", "1", "3"]]
    (data / "00002_flow.flo").unlink()
    code, _, err = _get("flyingchairs", "--root", str(tmp_path), "--verify")
    assert code == 1 and "pair 00002" in err and "_flow.flo" in err

    sintel = tmp_path / "MPI-Sintel-complete"
    make_sintel(str(sintel), num_scenes=2, frames_per_scene=3, num_test_scenes=1, height=16, width=16)
    code, out, err = _get("sintel", "--root", str(tmp_path), "--verify")
    assert code == 0, err
    flow_row = next(line for line in out.splitlines() if line.startswith("training/flow"))
    assert flow_row.split()[1:3] == ["2", "4"]  # 2 scenes x 2 flow fields (frame N -> N+1)


def _wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    """Poll `condition` until it holds (a deadline, not a guess at how long the other process takes)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow  # two processes that each import torch: 5-10 s on a busy 2-core machine
def test_a_second_run_on_the_same_archive_stops_naming_the_first(server, nah_tree, tmp_path):
    body = _zip(nah_tree)
    server.files["GOPRO_Large.zip"] = body
    server.hold_after = len(body) // 2  # the first run's download stays in progress until `go`
    root = tmp_path / "datasets"
    command = [sys.executable, str(REPO / "scripts" / "get_data.py"), "gopro_nah", "--root", str(root), "--url",
               server.url("GOPRO_Large.zip")]
    first = subprocess.Popen(command, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        lock = root / "GOPRO_Large.zip.lock"
        _wait_for(lambda: len(server.requests) == 1 and lock.is_file() and lock.read_text(), "the first request")
        assert json.loads(lock.read_text())["pid"] == first.pid
        second = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                                timeout=120)
        lines = _error_lines(second.stderr)
        assert second.returncode == 1 and len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"is being downloaded by pid {first.pid} on " in lines[0] and "GOPRO_Large.zip" in lines[0]
        assert len(server.requests) == 1  # the second run fetched nothing and left the .part file alone
        server.go.set()
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, err
    assert (root / "GOPRO_Large" / "test").is_dir() and not lock.exists() and not list(root.glob("*.part"))


def test_a_lock_left_by_a_killed_run_is_taken_over(server, nah_tree, tmp_path):
    server.files["GOPRO_Large.zip"] = _zip(nah_tree)
    root = tmp_path / "datasets"
    root.mkdir()
    # What a run killed with SIGKILL leaves: the file with its record, but no lock (the kernel dropped it).
    (root / "GOPRO_Large.zip.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": "earlier"}))
    code, _, err = _get("gopro_nah", "--root", str(root), "--url", server.url("GOPRO_Large.zip"))
    assert code == 0, err
    assert not (root / "GOPRO_Large.zip.lock").exists()


def _tar(members: List[tarfile.TarInfo], data: Dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            payload = data.get(member.name)
            if payload is not None:
                member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


@pytest.mark.parametrize("link_type, link_target", [(tarfile.SYMTYPE, "../../../outside.txt"),
                                                     (tarfile.SYMTYPE, "/etc/passwd"),
                                                     (tarfile.LNKTYPE, "../outside.txt")])
def test_a_tar_link_pointing_outside_is_one_line(server, tmp_path, link_type, link_target):
    folders = [tarfile.TarInfo(name) for name in ("GOPRO_Large", "GOPRO_Large/train", "GOPRO_Large/test")]
    for folder in folders:
        folder.type = tarfile.DIRTYPE
    link = tarfile.TarInfo("GOPRO_Large/train/escape")
    link.type, link.linkname = link_type, link_target
    server.files["GOPRO_Large.tar"] = _tar(folders + [tarfile.TarInfo("GOPRO_Large/readme.txt"), link],
                                           {"GOPRO_Large/readme.txt": b"hello"})
    root = tmp_path / "a" / "b" / "datasets"
    code, _, err = _get("gopro_nah", "--root", str(root), "--url", server.url("GOPRO_Large.tar"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "refusing to unpack it" in lines[0] and link_target in lines[0] and "GOPRO_Large/train/escape" in lines[0]
    assert sorted(p.name for p in root.iterdir()) == ["GOPRO_Large.zip"]  # kept to look at; nothing unpacked
    assert not (tmp_path / "a" / "outside.txt").exists()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_a_web_page_instead_of_the_archive_is_one_line(server, tmp_path, content_type):
    server.files["uc"] = b"\n  <!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>"
    server.content_type = content_type
    code, _, err = _get("gopro_nah", "--root", str(tmp_path), "--url", server.url("uc"))
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "returned a web page" in lines[0] and "--url" in lines[0], err
    assert server.url("uc") in lines[0] and "browser" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no .part file of the page, no lock file


def test_root_defaults_to_datasets_home_else_home_datasets(nah_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATASETS_HOME", raising=False)
    shutil.copytree(nah_tree, tmp_path / "home" / "Datasets" / "GOPRO_Large")
    code, out, err = _get("gopro_nah", "--verify")
    assert code == 0, err
    assert "using --root ~/Datasets ($DATASETS_HOME is unset)" in out
    assert f"{tmp_path / 'home' / 'Datasets' / 'GOPRO_Large'}: gopro_nah has the layout" in out
    monkeypatch.setenv("DATASETS_HOME", str(tmp_path / "elsewhere"))
    code, out, err = _get("gopro_nah", "--verify")
    assert code == 1 and f"using --root {tmp_path / 'elsewhere'} (from $DATASETS_HOME)" in out
    monkeypatch.delenv("EXPERIMENTS_HOME", raising=False)
    code, out, err = _get("prewarping_networks", "--verify")
    assert code == 1 and "using --root ~/Experiments ($EXPERIMENTS_HOME is unset)" in out
    assert str(tmp_path / "home" / "Experiments" / "prewarping_networks") in _error_lines(err)[0]
    # `--root $UNSET --verify` and `--root ''`: one line saying what to pass, nothing created.
    for argv in (["--root", "", "--verify"], ["--root", "--verify"], ["--root"]):
        code, out, err = _get("gopro_nah", *argv)
        lines = _error_lines(err)
        assert code == 2 and len(lines) == 1 and "--root is empty (is $DATASETS_HOME unset?)" in lines[0], err
        assert "--root ~/Datasets" in lines[0]


def test_one_layout_per_dataset_serves_reader_verify_get_data_and_dry_run(tmp_path):
    """Each dataset's layout is its reader module's LAYOUT: get_data.py's folders and markers, --verify's published
    totals and DRY_RUN's remedies all come from it."""
    from datasets import flyingchairs, gopro_nah, gopro_su, layout, sintel
    from scripts.dry_run import DOWNLOADS

    readers = {"gopro_nah": gopro_nah, "gopro_su": gopro_su, "flyingchairs": flyingchairs, "sintel": sintel}
    assert {name: module.LAYOUT for name, module in readers.items()} == layout.LAYOUTS
    assert {name: get_data.SOURCES[name].folder for name in readers} == {
        "gopro_nah": "GOPRO_Large", "gopro_su": "DeepVideoDeblurring_Dataset",
        "flyingchairs": "FlyingChairs_release", "sintel": "MPI-Sintel-complete"}
    assert {get_data.SOURCES[name].folder: name for name in readers} == DOWNLOADS
    assert layout.KNOWN_TOTALS == {"gopro_nah": {"train": (22, 2103), "test": (11, 1111)},
                                   "flyingchairs": {"pairs": (1, 22872)}, "sintel": {"training/flow": (23, 1041)}}
    (tmp_path / "FlyingChairs_release" / "data").mkdir(parents=True)
    (tmp_path / "GOPRO_Large" / "train").mkdir(parents=True)
    assert get_data.SOURCES["flyingchairs"].marker(tmp_path / "FlyingChairs_release")
    assert not get_data.SOURCES["gopro_nah"].marker(tmp_path / "GOPRO_Large")  # test/ is missing
    (tmp_path / "GOPRO_Large" / "test").mkdir()
    assert get_data.SOURCES["gopro_nah"].marker(tmp_path / "GOPRO_Large")
    chairs = tmp_path / "FlyingChairs_release"
    assert flyingchairs.LAYOUT.reader_root(chairs) == chairs / "data"


# ------------------------------------------------------------------------------------- MNIST and CIFAR-10
def _mnist_files(tmp_path: Path) -> Dict[str, bytes]:
    """MNIST's four .gz files (generated digits) by name."""
    from tools.synthetic_mnist import make_mnist

    raw = Path(make_mnist(str(tmp_path / "generated"), train=12, test=6)) / "raw"
    return {path.name: path.read_bytes() for path in sorted(raw.iterdir())}


def _with_checksums(monkeypatch, name: str, files: Dict[str, bytes], archive: Optional[bytes] = None) -> None:
    """The built-in source `name` with the MD5s of these files (and archive) instead of the published ones."""
    import dataclasses

    source = get_data.CHECKSUMMED[name]
    checked = tuple((path, hashlib.md5(files[Path(path).name]).hexdigest()) for path, _ in source.files)
    replaced = dataclasses.replace(source, files=checked, archive=None if archive is None else (
        source.archive[0], hashlib.md5(archive).hexdigest()))
    monkeypatch.setitem(get_data.CHECKSUMMED, name, replaced)


def test_mnist_downloads_checks_and_trains_from_the_files(server, tmp_path, monkeypatch):
    from datasets.mnist import MnistTrain, MnistValid

    files = _mnist_files(tmp_path)
    server.files.update(files)
    _with_checksums(monkeypatch, "mnist", files)
    root = tmp_path / "Datasets"
    code, out, err = _get("mnist", "--root", str(root), "--url", server.url(""))
    assert code == 0, err
    assert sorted(p.name for p in (root / "mnist" / "raw").iterdir()) == sorted(files)  # no .part or .lock left
    assert sorted(name for name, _ in server.requests) == sorted(files)
    assert "mnist is complete (every file has its published MD5 checksum)" in out
    assert len(MnistTrain(root=str(root / "mnist"))) == 12 and len(MnistValid(root=str(root / "mnist"))) == 6
    code, out, _ = _get("mnist", "--root", str(root), "--url", server.url(""))  # nothing is fetched again
    assert code == 0 and len(server.requests) == 4 and "exists already" in out


def test_mnist_with_a_wrong_checksum_is_one_line_and_removed(server, tmp_path, monkeypatch):
    files = _mnist_files(tmp_path)
    server.files.update(files)
    _with_checksums(monkeypatch, "mnist", {**files, "train-images-idx3-ubyte.gz": b"other"})
    root = tmp_path / "Datasets"
    code, _, err = _get("mnist", "--root", str(root), "--url", server.url("")[:-1])  # a slash is added
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1, err
    assert "train-images-idx3-ubyte.gz' from http://127.0.0.1:" in lines[0]
    assert "does not have the published MD5 checksum" in lines[0] and "(removed it:" in lines[0]
    assert not (root / "mnist" / "raw" / "train-images-idx3-ubyte.gz").exists()


def test_mnist_verify_accepts_generated_data_with_a_note_and_names_a_broken_file(tmp_path):
    from tools.synthetic_mnist import make_mnist

    make_mnist(str(tmp_path), train=10, test=5)
    code, out, err = _get("mnist", "--root", str(tmp_path), "--verify")
    assert code == 0, err
    assert out.count("differs from the published file (MD5 ") == 4 and "not the published dataset" in out
    (tmp_path / "mnist" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    code, _, err = _get("mnist", "--root", str(tmp_path), "--verify")
    assert code == 1 and _error_lines(err) == [
        f"get_data.py: error: '{tmp_path}/mnist/raw/t10k-labels-idx1-ubyte.gz' is missing (run `python "
        f"scripts/get_data.py mnist --root {tmp_path}`)"]


def test_cifar10_downloads_checks_unpacks_and_reads(server, tmp_path, monkeypatch):
    import dataclasses

    from datasets.cifar10 import read_batch
    from tests.test_classification import write_cifar

    write_cifar(tmp_path / "made")
    folder = tmp_path / "made" / "cifar-10-batches-py"
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    body = buffer.getvalue()
    server.files["cifar-10-python.tar.gz"] = body
    _with_checksums(monkeypatch, "cifar10", files, archive=body)
    root = tmp_path / "Datasets"
    code, out, err = _get("cifar10", "--root", str(root), "--url", server.url("cifar-10-python.tar.gz"))
    assert code == 0, err
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # the archive is removed
    assert "cifar10 is complete" in out and len(read_batch(str(root / "cifar-10-batches-py" / "test_batch"))[1]) == 3
    monkeypatch.setitem(get_data.CHECKSUMMED, "cifar10", dataclasses.replace(
        get_data.CHECKSUMMED["cifar10"], archive=("cifar-10-python.tar.gz", "0" * 32)))
    code, _, err = _get("cifar10", "--root", str(tmp_path / "other"), "--url", server.url("cifar-10-python.tar.gz"))
    assert code == 1 and "does not have the published MD5 checksum 000" in _error_lines(err)[0]
    assert not (tmp_path / "other" / "cifar-10-python.tar.gz").exists()


def test_mnist_and_cifar10_use_torchvisions_addresses_and_checksums():
    mnist, cifar = get_data.CHECKSUMMED["mnist"], get_data.CHECKSUMMED["cifar10"]
    assert mnist.urls == ("https://ossci-datasets.s3.amazonaws.com/mnist/",)
    assert dict(mnist.files)["raw/train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert dict(mnist.files)["raw/t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert cifar.urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
    assert cifar.archive == ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
    assert dict(cifar.files)["test_batch"] == "40351d587109b95175f43aff81a1287e" and len(cifar.files) == 6
