"""utils/termination.py in a process of its own: SIGTERM raises Terminated, waits for a deferred write, and a
process that cannot stop (its main thread blocked) is ended by the watchdog."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import os, signal, sys, time
from utils import termination

installed = termination.install(on_stuck=lambda: print("stuck", flush=True), grace_s=float(sys.argv[1]))
try:
    with termination.deferred():
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(float(sys.argv[2]))  # a checkpoint write: not cut by the signal
        print("write complete", flush=True)
    print("not reached", flush=True)
except termination.Terminated as stopped:
    print("terminated:", stopped, flush=True)
    time.sleep(float(sys.argv[3]))  # stopping: quick, or stuck
termination.uninstall(installed)
print("exit", flush=True)
sys.exit(termination.EXIT_CODE)
"""


def _run(grace, write, stopping):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(grace), str(write), str(stopping)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_sigterm_waits_for_a_deferred_write_then_stops():
    result = _run(grace=30, write=0.2, stopping=0)
    assert result.returncode == 143, result.stderr
    assert result.stdout.splitlines() == ["ready", "write complete", "terminated: received SIGTERM", "exit"]


def test_a_process_that_does_not_stop_is_ended_by_the_watchdog():
    result = _run(grace=0.5, write=0, stopping=30)
    assert result.returncode == 143, result.stderr
    assert result.stdout.splitlines() == ["ready", "write complete", "terminated: received SIGTERM", "stuck"]


FORKS = """
import os, signal, time
from utils import termination

installed = termination.install(on_stuck=lambda: print("stuck", flush=True), grace_s=0.5)
ready_read, ready_write = os.pipe()
child = os.fork()  # as a DataLoader worker is
if child == 0:
    os.write(ready_write, b"1")  # started (the fork's own handlers have run)
    time.sleep(30)
    os._exit(0)
os.read(ready_read, 1)
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
print("child ended by SIGTERM:", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, flush=True)
time.sleep(1.5)  # longer than the grace time: had the child's signal woken the watchdog, this process would end
sleeper = os.fork()  # a live worker holding the watchdog's pipe must not keep uninstall waiting
if sleeper == 0:
    time.sleep(30)
    os._exit(0)
termination.uninstall(installed)
print("uninstalled", flush=True)
os.kill(sleeper, signal.SIGKILL)
"""


def test_forked_children_end_on_sigterm_as_before_and_do_not_wake_the_watchdog():
    result = subprocess.run([sys.executable, "-c", FORKS], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["child ended by SIGTERM: True", "uninstalled"]


LOADER_WORKERS = """
import os, signal, subprocess
import torch
from utils import termination


class WorkerPids(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return os.getpid()


loader = torch.utils.data.DataLoader(WorkerPids(), batch_size=1, num_workers=2, persistent_workers=True)
worker_pids = sorted({int(pid) for pid in loader})
installed = termination.install(grace_s=30)
try:
    with termination.interruptible():  # as the runtime's step
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler signals the whole job: this process first ...
        sum(range(10))
except termination.Terminated as stopped:
    print("terminated:", stopped, flush=True)
    for pid in worker_pids:  # ... and the loader's workers, which end on it (their SIGCHLD comes to this process);
        # sent by another process, as a scheduler's is: a worker exits quietly on its parent's SIGTERM
        subprocess.run(["kill", "-TERM", str(pid)], check=True)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    print("stopping:", sum(range(10)), flush=True)  # the pending SIGCHLD's Python handler runs by now
termination.uninstall(installed)
print("exit", flush=True)
"""


def test_loader_workers_ended_by_the_same_sigterm_are_not_reported_as_failed_workers():
    # PyTorch's SIGCHLD handler raised "DataLoader worker (pid N) is killed by signal: Terminated" in the stopping
    # code, or in an atexit finalizer after the resume line (a traceback in a scheduler's stopped run).
    result = subprocess.run([sys.executable, "-c", LOADER_WORKERS], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["terminated: received SIGTERM", "stopping: 45", "exit"]
    assert "Traceback" not in result.stderr, result.stderr


REGIONS = """
import os, signal
from utils import termination

installed = termination.install(grace_s=30)
os.kill(os.getpid(), signal.SIGTERM)  # outside a block: recorded; code that builds an object is not cut
print("outside:", sum(range(10)), termination.received() == signal.SIGTERM, flush=True)
try:
    with termination.interruptible():
        print("not reached", flush=True)
except termination.Terminated as stopped:
    print("on entry:", stopped, flush=True)
with termination.interruptible():
    print("once: a second block runs", flush=True)
termination.uninstall(installed)

installed = termination.install(grace_s=30)
try:
    with termination.interruptible():
        os.kill(os.getpid(), signal.SIGTERM)  # inside a block: raised at once
        print("not reached", flush=True)
except termination.Terminated as stopped:
    print("inside:", stopped, flush=True)
termination.uninstall(installed)
"""


def test_sigterm_raises_inside_an_interruptible_block_and_elsewhere_at_the_next_one():
    result = subprocess.run([sys.executable, "-c", REGIONS], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["outside: 45 True", "on entry: received SIGTERM",
                                          "once: a second block runs", "inside: received SIGTERM"]
