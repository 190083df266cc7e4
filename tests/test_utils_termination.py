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
