"""Run folder safety: atomic writes that leave nothing behind, the per-folder lock, the one-run-per-folder
policy, and the source snapshot that holds what git tracks."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO
from utils import checkpoints, files, run_folder, system


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 2))


def test_a_full_disk_leaves_the_previous_checkpoints_intact_and_no_temporary_file(tmp_path, monkeypatch):
    model = _model()
    checkpoints.save(str(tmp_path), {"psnr": 20.0}, 1, model, best_keys=["psnr"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(obj, path):  # what torch's zip writer raises when the disk fills up
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3584 vs 3478")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(files.WriteError) as caught:
        checkpoints.save(str(tmp_path), {"psnr": 30.0}, 2, model, best_keys=["psnr"])
    message = str(caught.value)
    assert "checkpoint_latest_.ckpt" in message and "no space left on device" in message
    assert message.endswith("the previous checkpoints are intact") and "\n" not in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing changed, nothing added


def test_checkpoint_and_summary_agree_and_temporary_names_are_unique(tmp_path):
    model = _model()
    for epoch in (1, 2):
        checkpoints.save(str(tmp_path), {"psnr": 20.0 + epoch}, epoch, model, best_keys=["psnr"])
        for name in ("checkpoint_latest_", "checkpoint_best_psnr"):
            stored = torch.load(tmp_path / f"{name}.ckpt", weights_only=True)
            summary = json.loads((tmp_path / f"{name}.json").read_text())
            assert stored["epoch"] == summary["epoch"] == epoch and stored["psnr"] == summary["psnr"]
    assert not list(tmp_path.glob("*.tmp"))
    assert files.temporary_path(str(tmp_path / "a.ckpt")) != files.temporary_path(str(tmp_path / "a.ckpt"))


def test_write_failure_names_the_file_and_the_cause(tmp_path):
    with pytest.raises(files.WriteError, match=r"cannot write .*args\.txt: permission denied|read-only"):
        def refuse(path):
            raise PermissionError(13, "Permission denied", path)

        files.write_atomically(str(tmp_path / "args.txt"), refuse)
    assert list(tmp_path.iterdir()) == []


_HOLDER = """
import sys
from utils import run_folder
lock = run_folder.RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_process_is_refused_and_a_killed_holders_lock_is_taken_over(tmp_path):
    folder = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, folder], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_folder.RunFolderError, match=rf"is in use by pid {holder.pid} on "):
            run_folder.RunLock(folder).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = run_folder.RunLock(folder)
    stale = lock.acquire()  # the kernel dropped the killed holder's lock
    assert stale is not None and stale["pid"] == holder.pid
    assert "ended without releasing it" in run_folder.describe_stale_holder(stale)
    lock.release()
    assert run_folder.RunLock(folder).acquire() is None  # a released lock leaves no holder behind


def test_a_new_run_refuses_a_folder_that_holds_a_run(tmp_path):
    run_folder.check_new_run(str(tmp_path))  # empty: fine
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "args.json").write_text("{}")  # a run that ended before its first epoch: nothing to lose
    run_folder.check_new_run(str(tmp_path))
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "GoProNahTest_evaluation_losses.csv").write_text("epoch,step,psnr\n1,,30.0\n")
    with pytest.raises(run_folder.RunFolderError, match=r"already holds a run \(csv/GoProNahTest_evaluation_"
                                                        r"losses.csv\): continue it with --resume="):
        run_folder.check_new_run(str(tmp_path))  # an evaluation's records
    (tmp_path / "args.json").write_text('{"training_dataset": "GoProNahTrain"}')
    run_folder.check_new_run(str(tmp_path))  # a training run killed in its first epoch: nothing to lose
    (tmp_path / "checkpoint_latest_.ckpt").write_bytes(b"")
    with pytest.raises(run_folder.RunFolderError, match=r"already holds a run \(checkpoint_latest_.ckpt, csv/"):
        run_folder.check_new_run(str(tmp_path))


def test_unusable_save_paths_are_refused_with_the_reason(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(run_folder.RunFolderError, match="is a file, not a folder"):
        run_folder.check_writable(str(tmp_path / "file"))
    with pytest.raises(run_folder.RunFolderError, match="is a file, so the folder cannot be created"):
        run_folder.check_writable(str(tmp_path / "file" / "run"))
    run_folder.check_writable(str(tmp_path / "new" / "run"))  # creatable


def test_source_snapshot_holds_what_git_tracks_or_would_track(tmp_path):
    def git(*arguments):
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("secret_token.txt\nexperiments/\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py", ".gitignore")
    (tmp_path / "new_model.py").write_text("print(2)\n")  # not yet added: git would track it
    (tmp_path / "secret_token.txt").write_text("123:ABC")  # ignored
    (tmp_path / "experiments" / "run").mkdir(parents=True)
    (tmp_path / "experiments" / "run" / "notes.md").write_text("ignored folder")
    (tmp_path / "old_run").mkdir()
    (tmp_path / "old_run" / "args.json").write_text("{}")
    (tmp_path / "old_run" / "args.txt").write_text("another run's records")
    names = [os.path.relpath(p, tmp_path) for p in system.source_files(str(tmp_path))]
    assert names == ["new_model.py", "train.py"]


def test_what_a_killed_writer_left_is_tidied_when_the_folder_is_taken_over(tmp_path):
    model = _model()
    checkpoints.save(str(tmp_path), {"psnr": 21.0}, 1, model, best_keys=["psnr"])
    old_summary = (tmp_path / "checkpoint_latest_.json").read_text()
    checkpoints.save(str(tmp_path), {"psnr": 22.0}, 2, model, best_keys=["psnr"])
    # Killed after renaming the checkpoint, before renaming its summary, with a temporary file half-written.
    (tmp_path / "checkpoint_latest_.json").write_text(old_summary)
    (tmp_path / "checkpoint_best_psnr.ckpt.k3x_9qz0.tmp").write_bytes(b"partial")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "Data_training_losses.csv.a1b2c3d4.tmp").write_text("epoch")
    (tmp_path / "notes.tmp").write_text("not ours")
    assert checkpoints.repair_summaries(str(tmp_path)) == ["checkpoint_latest_.json"]
    assert json.loads((tmp_path / "checkpoint_latest_.json").read_text()) == {"psnr": 22.0, "epoch": 2}
    assert checkpoints.repair_summaries(str(tmp_path)) == []
    assert files.remove_stale_temporaries(str(tmp_path)) == ["checkpoint_best_psnr.ckpt.k3x_9qz0.tmp",
                                                              "csv/Data_training_losses.csv.a1b2c3d4.tmp"]
    assert (tmp_path / "notes.tmp").exists()


def test_records_get_the_process_umask_read_without_setting_it(tmp_path, monkeypatch):
    previous = os.umask(0o027)
    try:
        assert files.process_umask() == 0o027
        assert os.stat(files.temporary_path(str(tmp_path / "a.json"))).st_mode & 0o777 == 0o640
        monkeypatch.setattr(files, "open", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no /proc")),
                            raising=False)  # another system: the fallback reads it once by setting it
        files._umask_by_setting.cache_clear()
        assert files.process_umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        files._umask_by_setting.cache_clear()
        os.umask(previous)
    # Importing the module leaves the umask alone (it used to set it to 0 and back at import).
    code = "import os; os.umask = None; import utils.files"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
