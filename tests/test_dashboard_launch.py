"""`stepscope dashboard` and `run_dashboard`: the command line Streamlit is started with."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from stepscope.cli import cli
from stepscope.dashboard import launch
from stepscope.dashboard.settings import settings_from_env
from stepscope.store import Store


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_command_runs_the_packaged_app_with_usage_statistics_off():
    command = launch.streamlit_command("127.0.0.1", 8765, python="python3")
    assert command[:4] == ["python3", "-m", "streamlit", "run"]
    assert command[4] == str(launch.APP_PATH) and launch.APP_PATH.is_file()
    assert flag(command, "--browser.gatherUsageStats") == "false"
    assert flag(command, "--server.address") == "127.0.0.1"
    assert flag(command, "--server.port") == "8765"
    # Always headless: otherwise Streamlit asks for an e-mail address before it serves.
    assert flag(command, "--server.headless") == "true"


def health_server(delay_s: float = 0.0):
    """A local server answering Streamlit's health check, after `delay_s`."""
    import http.server

    started = time.monotonic()

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ready = self.path == "/_stcore/health" and time.monotonic() - started >= delay_s
            self.send_response(200 if ready else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_browser_opens_once_the_server_answers_its_health_check():
    server = health_server(delay_s=0.6)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    opened = []
    try:
        launch.open_browser_when_ready("http://localhost:1/x", base, opener=opened.append).join(10)
    finally:
        server.shutdown()
    assert opened == ["http://localhost:1/x"]


def test_no_browser_opens_for_a_server_that_never_comes_up():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    opened = []
    thread = launch.open_browser_when_ready("http://x", f"http://127.0.0.1:{port}",
                                            timeout_s=0.5, opener=opened.append)
    thread.join(10)
    assert not thread.is_alive() and opened == []


def test_the_cli_opens_a_browser_unless_told_not_to(tmp_path, launched, monkeypatch):
    opened = []
    monkeypatch.setattr(launch, "open_browser_when_ready", lambda url, server: opened.append(
        (url, server)))
    db = str(Store.open(tmp_path / "store", create=True).path)
    assert CliRunner().invoke(cli, ["dashboard", "--db", db, "--port", "8602"]).exit_code == 0
    assert CliRunner().invoke(cli, ["dashboard", "--db", db, "--no-browser"]).exit_code == 0
    assert opened == [("http://localhost:8602", "http://127.0.0.1:8602")]


def test_every_packaged_streamlit_setting_becomes_a_flag():
    flags = launch.packaged_streamlit_flags()
    assert flag(flags, "--browser.gatherUsageStats") == "false"
    assert flag(flags, "--server.fileWatcherType") == "none"
    assert flag(flags, "--theme.primaryColor") == "#2563eb"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_need_no_warning(host):
    assert launch.exposure_warning(host, 8501) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "dashboard.example.com"])
def test_other_addresses_are_warned_about_loudly(host):
    warning = launch.exposure_warning(host, 8501)
    assert warning.startswith("WARNING") and "NO authentication" in warning and host in warning


def test_the_app_learns_the_store_config_and_now_from_its_environment(tmp_path):
    env = launch.dashboard_environment(str(tmp_path / "db"), str(tmp_path / "s.toml"),
                                       "2026-11-16T00:00:00Z", base={"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    settings = settings_from_env(env)
    assert settings.db == str((tmp_path / "db").resolve())
    assert settings.config_path == str((tmp_path / "s.toml").resolve())
    assert settings.now.isoformat() == "2026-11-16T00:00:00+00:00"


def test_no_config_and_no_now_leave_the_defaults():
    env = launch.dashboard_environment("db", None, None,
                                       base={"STEPSCOPE_CONFIG": "old.toml", "STEPSCOPE_NOW": "now"})
    assert "STEPSCOPE_CONFIG" not in env and "STEPSCOPE_NOW" not in env
    assert settings_from_env(env).now is None


@pytest.fixture()
def launched(monkeypatch):
    """Record what `stepscope dashboard` would start instead of serving until interrupted."""
    calls = []

    def record(command, env):
        calls.append((command, env))
        return 0

    monkeypatch.setattr(launch, "serve", record)
    return calls


def test_cli_passes_its_options_to_streamlit(tmp_path, launched):
    db = Store.open(tmp_path / "store", create=True).path
    config = tmp_path / "stepscope.toml"
    config.write_text("")
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(db), "--config", str(config),
                                      "--port", "8600", "--now", "2026-11-16T00:00Z", "--no-browser"])
    assert result.exit_code == 0, result.output
    (command, env), = launched
    assert flag(command, "--server.port") == "8600"
    assert flag(command, "--server.headless") == "true"
    assert flag(command, "--server.address") == "127.0.0.1"
    assert env["STEPSCOPE_DB"] == str(db.resolve())
    assert env["STEPSCOPE_NOW"] == "2026-11-16T00:00:00Z"
    assert "WARNING" not in result.output


def test_cli_warns_when_listening_beyond_localhost(tmp_path, launched):
    db = Store.open(tmp_path / "store", create=True).path
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(db), "--host", "0.0.0.0",
                                      "--no-browser"])
    assert result.exit_code == 0
    assert "WARNING: the dashboard will listen on 0.0.0.0:8501" in result.output
    assert flag(launched[0][0], "--server.address") == "0.0.0.0"


def test_cli_rejects_a_directory_that_is_not_a_store(tmp_path, launched):
    (tmp_path / "x.txt").write_text("hi")
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a stepscope store" in result.output
    assert launched == []


def test_cli_rejects_a_bad_now(tmp_path, launched):
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(tmp_path / "s"), "--now", "soon"])
    assert result.exit_code == 2
    assert launched == []


def test_cli_notes_a_store_that_does_not_exist_yet(tmp_path, launched):
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(tmp_path / "new")])
    assert result.exit_code == 0
    assert "no store at" in result.output


def test_serve_returns_the_servers_exit_status():
    assert launch.serve([sys.executable, "-c", "raise SystemExit(3)"], env={}) == 3


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_launcher_stops_the_server(tmp_path, stop):
    """Ctrl-C or a SIGTERM to `stepscope dashboard` ends the server it started, too."""
    pid_file = tmp_path / "server.pid"
    server = (f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); "
              "time.sleep(120)")
    launcher = subprocess.Popen([
        sys.executable, "-c",
        "import os, sys; from stepscope.dashboard.launch import serve; "
        f"sys.exit(serve([sys.executable, '-c', {server!r}], dict(os.environ)))",
    ])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    server_pid = int(pid_file.read_text())
    launcher.send_signal(stop)
    launcher.wait(timeout=30)
    for _ in range(200):
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(server_pid, signal.SIGKILL)
        pytest.fail("the server outlived the launcher")
