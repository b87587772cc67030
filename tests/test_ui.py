"""`clv ui` as a real process: it prints the runs page of `clv-train` once the server answers, and
SIGTERM or SIGINT sent to `clv ui` alone stops the MLflow server and every process it started,
leaving the port free. The two signals are tried on two servers started side by side (a server takes
10-30 s to start)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

STARTUP_S = 150  # the server on a loaded 2-core machine
STOP_S = 30  # `clv ui` SIGKILLs what is left after 10 s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port and a server could bind it again (as MLflow's does, SO_REUSEADDR)."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        table = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError):
                state, ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
                table[int(stat.parent.name)] = (int(ppid), int(pgrp), "zombie" if state == "Z" else "running")
        return table
    table = {}
    for proc in psutil.process_iter(["ppid", "status"]):
        with contextlib.suppress(psutil.Error, OSError):
            table[proc.pid] = (proc.info["ppid"], os.getpgid(proc.pid), proc.info["status"])
    return table


def _alive(pids: set[int]) -> set[int]:
    table = _processes()
    return {pid for pid in pids if pid in table and table[pid][2] != "zombie"}


def _tree(root: int) -> set[int]:
    """``root``'s descendants, and every process sharing a process group with one of them."""
    table = _processes()
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, _, _) in table.items() if ppid in tree} - tree
        grew = bool(more)
        tree |= more
    groups = {table[pid][1] for pid in tree if pid in table} - {table.get(root, (0, 0, ""))[1]}
    return (tree | {pid for pid, (_, pgrp, _) in table.items() if pgrp in groups}) - {root}


def _answers(port: int) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{port}/health", timeout=2
        ):
            return True
    except OSError:
        return False


class Ui:
    """One `clv ui --no-browser` on a free port over its own store, output in files (no pipe to fill)."""

    def __init__(self, root: Path, *sets: str, env: dict[str, str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.out, self.err = root / "stdout.txt", root / "stderr.txt"
        environ = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        environ.pop("MLFLOW_TRACKING_URI", None)
        overrides = [arg for item in (f'tracking.root="{root}"', *sets) for arg in ("--set", item)]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clv_models.cli", "ui", "--port", str(self.port), "--no-browser", *overrides],
                stdout=out, stderr=err, env=environ, cwd=root, start_new_session=True,
            )  # fmt: skip
        self.children: set[int] = set()

    def stdout(self) -> str:
        return self.out.read_text()

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _answers(self.port) and "MLflow UI ready" in self.stdout():
                self.children = _tree(self.proc.pid)
                return
            time.sleep(0.5)
        pytest.fail(f"clv ui did not come up on {self.port}: {self.stdout()} {self.err.read_text()[-2000:]}")

    def stop(self, sig: int) -> None:
        """``sig`` to `clv ui` alone (as a terminal's Ctrl-C or a supervisor sends it); then nothing of
        the server may run and the port must be free."""
        os.kill(self.proc.pid, sig)
        assert self.proc.wait(timeout=STOP_S) == 0, (sig, self.err.read_text()[-2000:])
        assert "MLflow UI stopped" in self.stdout()
        assert not _alive(self.children), (sig, _alive(self.children))
        assert _port_free(self.port), sig

    def cleanup(self) -> None:
        """After a failure: leave nothing running."""
        for pid in _alive(self.children | {self.proc.pid}):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def test_ui_opens_the_runs_and_a_signal_stops_every_server_process(tmp_path: Path) -> None:
    # SIGTERM: a store whose training experiment exists (MLflow's "Default", id 0, in every new store);
    # SIGINT: a store without it yet (`clv train` creates clv-train). Both start side by side.
    named = Ui(tmp_path / "named", 'tracking.train_experiment="Default"')
    bare = Ui(tmp_path / "bare")
    uis = {signal.SIGTERM: named, signal.SIGINT: bare}
    try:
        deadline = time.monotonic() + STARTUP_S
        for ui in uis.values():
            ui.wait_ready(deadline)
        runs = f"http://127.0.0.1:{named.port}/#/experiments/0/runs"
        assert f"MLflow UI ready, runs of 'Default': {runs}\n" in named.stdout()
        assert (f"MLflow UI ready: http://127.0.0.1:{bare.port}/ (no experiment 'clv-train' in this store yet: "
                "clv train makes it)") in bare.stdout()  # fmt: skip
        for ui in uis.values():
            # the server (mlflow, uvicorn) runs under clv ui in a session of its own
            assert len(ui.children) >= 2, ui.children
            assert all(os.getsid(pid) != os.getsid(ui.proc.pid) for pid in ui.children)
        started = time.monotonic()
        for sig, ui in uis.items():
            ui.stop(sig)
        assert time.monotonic() - started < STOP_S
        assert "Traceback" not in named.err.read_text() + bare.err.read_text()
    finally:
        for ui in uis.values():
            ui.cleanup()


@pytest.mark.slow
def test_ui_opens_clv_train_and_stops_the_job_runners_too(tmp_path: Path) -> None:
    """On a store where training made `clv-train`, with MLflow's job execution on (the environment's
    choice: a job runner and its worker processes), SIGTERM to `clv ui` ends every one of them."""
    from clv_models.tracking import Tracker

    experiment_id = Tracker("clv-train", root=tmp_path).experiment_id
    ui = Ui(tmp_path, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"})
    try:
        ui.wait_ready(time.monotonic() + STARTUP_S)
        runs = f"http://127.0.0.1:{ui.port}/#/experiments/{experiment_id}/runs"
        assert f"MLflow UI ready, runs of 'clv-train': {runs}\n" in ui.stdout()
        time.sleep(5)  # the job runner starts its workers after the server answers
        ui.children = _tree(ui.proc.pid)
        assert len(ui.children) > 3, ui.children
        ui.stop(signal.SIGTERM)
    finally:
        ui.cleanup()


def test_ui_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "clv_models.cli", "ui", "--port", str(port), "--no-browser",
             "--set", f'tracking.root="{tmp_path}"'],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: --port {port}: 127.0.0.1:{port} is in use; pass a free --port"


def test_ui_help_names_the_browser_switch() -> None:
    result = subprocess.run([sys.executable, "-m", "clv_models.cli", "ui", "--help"], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "200"}, timeout=60)  # fmt: skip
    assert result.returncode == 0 and "--no-browser" in result.stdout
