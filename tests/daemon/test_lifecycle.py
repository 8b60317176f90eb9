"""start / status / stop / logs in subprocesses, the lock that allows one daemon per home, the pid
file it cleans, and what `start` says when the daemon cannot come up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.request

from mlxgw import paths
from mlxgw.daemon.lock import holder
from tests.daemon.helpers import MLXGW, alive, free_port, run_cli, wait_until
from tests.foundation.helpers import cli

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ .+$")


def test_start_status_logs_stop_round_trip(daemons, port):
    before = run_cli("status")
    assert before.returncode == 0
    assert "not running" in before.stdout and "mlxgw start" in before.stdout
    assert json.loads(run_cli("status", "--json").stdout)["running"] is False

    started = run_cli("start")
    assert started.returncode == 0, started.stderr
    assert f"http://127.0.0.1:{port}" in started.stdout
    pid = int(paths.pid_path().read_text())
    daemons.pids.append(pid)

    report = json.loads(run_cli("status", "--json").stdout)
    assert report["running"] is True
    assert (report["pid"], report["host"], report["port"]) == (pid, "127.0.0.1", port)
    assert report["answering"] is True and report["uptime_s"] >= 0
    assert report["requests_last_hour"] == {"total": 0, "errors": 0}
    panel = run_cli("status").stdout
    assert "running" in panel and str(pid) in panel and f"127.0.0.1:{port}" in panel
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"

    stopped = run_cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}) stopped" in stopped.stdout
    assert holder() is None and not paths.pid_path().exists()
    wait_until(lambda: not alive(pid), timeout=5, what="the daemon to exit")
    assert json.loads(run_cli("status", "--json").stdout)["running"] is False
    assert "not running" in run_cli("stop").stdout

    # The daemon's log: one structured line per record, from start to stop.
    lines = run_cli("logs", "-n", "100").stdout.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert f"listening on http://127.0.0.1:{port}" in text and "SIGTERM" in text and "stopped" in text
    assert run_cli("logs", "-n", "1").stdout.splitlines() == lines[-1:]


def test_stale_pid_file_is_detected_and_removed():
    gone = subprocess.Popen(["true"])
    gone.wait()
    paths.pid_path().write_text(f"{gone.pid}\n")
    result = cli("status")
    assert "not running" in result.output and f"stale pid file (process {gone.pid}" in result.output
    assert not paths.pid_path().exists()

    # A live process's pid proves nothing either: only the lock says a daemon runs.
    paths.pid_path().write_text(f"{os.getpid()}\n")
    report = json.loads(cli("status", "--json").stdout)
    assert report["running"] is False and report["stale_pid_removed"] == os.getpid()
    assert not paths.pid_path().exists()


def test_a_second_daemon_on_the_same_home_is_refused(daemons, port):
    first = daemons.start()

    again = run_cli("start", "--port", str(free_port()))
    assert again.returncode == 1
    assert f"already running for {paths.home()} (pid {first.pid} at http://127.0.0.1:{port})" in again.stderr

    # `serve` does not ask first: the lock alone turns it away, before it binds or logs anything.
    serve = run_cli("serve", "--port", str(free_port()), timeout=20)
    assert serve.returncode == 1
    assert serve.stderr.count("\n") == 1 and "already running" in serve.stderr
    assert holder().pid == first.pid
    assert json.loads(run_cli("status", "--json").stdout)["pid"] == first.pid


def test_start_says_why_the_daemon_did_not_come_up(port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run_cli("start", "--wait", "20")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the daemon did not start: cannot listen on 127.0.0.1:") and "in use" in last
    assert "last lines of" in result.stderr
    assert holder() is None and not paths.pid_path().exists()


def test_sigterm_to_a_foreground_serve_exits_cleanly(port):
    """Exit status 0 on SIGTERM: launchd (SuccessfulExit=false) and systemd (on-failure) leave it stopped."""
    server = subprocess.Popen([*MLXGW, "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (info := holder()) is not None and info.listening, timeout=20, what="serve to listen")
        assert holder().pid == server.pid and paths.pid_path().read_text().strip() == str(server.pid)
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0
    assert f"mlxgw listening on http://127.0.0.1:{port}" in out
    assert holder() is None and not paths.pid_path().exists()
