"""scripts/get_data.py against a local HTTP server (Range support, request log, injected faults): download,
resume, integrity, layout, server and disk errors, --verify. Nothing comes from the internet."""
import contextlib
import hashlib
import http.server
import importlib.util
import io
import os
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from datasets.synthetic_gopro import make_gopro_nah, make_gopro_su
from tests.helpers import run_main

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("get_data", REPO / "scripts" / "get_data.py")
get_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(get_data)


class _Server(http.server.ThreadingHTTPServer):
    """Serves `files`; logs (path, Range header) per request; can cut the first response after `cut_after`
    bytes (a forced disconnect) or answer `status` instead."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: Dict[str, bytes] = {}
        self.requests: List[tuple] = []
        self.cut_after: Optional[int] = None
        self.status: Optional[int] = None

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
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(body[start:start + server.cut_after])
            server.cut_after = None
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, per test.
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield running
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
    assert "train" in out and "8" in out.split("train", 1)[1].splitlines()[0]  # 2 sequences x 4 frames
    assert "is complete" in out and "CC BY 4.0" in out
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
    broken = root / "GOPRO_Large" / "test" / "GOPR9500_00_00" / "sharp" / "000002.png"
    broken.write_bytes(b"\x89PNG broken")
    assert _get("gopro_nah", "--root", str(root), "--verify")[0] == 0  # the cheap check reads no pixels
    code, _, err = _get("gopro_nah", "--root", str(root), "--verify", "--deep")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and str(broken) in lines[0]
    (root / "GOPRO_Large" / "test" / "GOPR9500_00_00" / "blur" / "000003.png").unlink()
    code, _, err = _get("gopro_nah", "--root", str(root), "--verify")
    assert code == 1 and "3 frames in blur/ but 4 in sharp/" in err


def test_su_verify_checks_the_validation_sequences(tmp_path):
    base = make_gopro_su(str(tmp_path), width=32, height=24, num_frames=4, train_sequences=1, valid_sequences=1,
                         qualitative_sequences=1, seed=0, sub_frames=3)
    code, out, err = _get("gopro_su", "--root", str(tmp_path), "--verify")
    lines = _error_lines(err)
    assert code == 1 and len(lines) == 1 and "IMG_0049" in lines[0] and "IMG_0030" not in lines[0]
    assert "quantitative" in out and "qualitative" in out
    assert base == tmp_path / "DeepVideoDeblurring_Dataset"


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
    from datasets.synthetic_flow import make_flyingchairs, make_sintel

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
