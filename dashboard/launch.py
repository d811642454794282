"""Starting the dashboard: `streamlit run` on the packaged app, with safe defaults.

The app runs in a child process (`python -m streamlit run`) because Streamlit owns its
process's event loop and signal handlers. Every setting of the packaged
`.streamlit/config.toml` is passed as a flag, since Streamlit reads that file only from
the working directory and the user's own directory: this way usage statistics stay
off and the theme holds wherever the command is started.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from stepscope.dashboard.settings import settings_env

PACKAGE_DIR = Path(__file__).resolve().parent
APP_PATH = PACKAGE_DIR / "app.py"
STREAMLIT_CONFIG = PACKAGE_DIR / ".streamlit" / "config.toml"
LOCAL_HOSTS = {"localhost", "localhost.localdomain"}


def is_local_host(host: str) -> bool:
    """True when binding `host` keeps the dashboard reachable from this machine only."""
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """The warning printed when the dashboard listens beyond localhost (it has no login)."""
    if is_local_host(host):
        return None
    return (
        f"WARNING: the dashboard will listen on {host}:{port}, beyond this machine, and it has "
        "NO authentication: anyone who can reach that address can read every trace, cost and "
        "tenant in the store. Bind 127.0.0.1 (the default) and use an SSH tunnel or an "
        "authenticating reverse proxy instead."
    )


def packaged_streamlit_flags(config_file: Path = STREAMLIT_CONFIG) -> list[str]:
    """`--section.key value` for every setting of the packaged Streamlit config."""
    data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    flags: list[str] = []
    for section, values in data.items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags


def streamlit_command(host: str = "127.0.0.1", port: int = 8501,
                      python: str = sys.executable) -> list[str]:
    """The full `streamlit run` command line for the packaged app.

    Always headless: a non-headless Streamlit without a credentials file in the user's
    home first asks for an e-mail address on the terminal and serves nothing until it
    gets an answer (forever, when standard input is not a terminal). stepscope opens the
    browser itself instead (`open_browser_when_ready`).
    """
    return [
        python, "-m", "streamlit", "run", str(APP_PATH),
        *packaged_streamlit_flags(),
        "--browser.gatherUsageStats", "false",
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
    ]


def open_browser_when_ready(url: str, server: str, *, timeout_s: float = 120.0,
                            opener: Callable[[str], object] = webbrowser.open) -> threading.Thread:
    """Open `url` in the user's browser once the server at `server` (a base URL) answers
    Streamlit's health check.

    Runs in a daemon thread, so a server that never comes up just means no browser.
    """
    def wait_then_open() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{server}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        opener(url)
                        return
            except OSError:
                pass
            time.sleep(0.25)

    thread = threading.Thread(target=wait_then_open, name="open-browser", daemon=True)
    thread.start()
    return thread


def dashboard_environment(db: str, config_path: str | None, now: str | None,
                          base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, plus the store, configuration and `--now`."""
    env = dict(os.environ if base is None else base)
    env.pop("STEPSCOPE_CONFIG", None)
    env.pop("STEPSCOPE_NOW", None)
    env.update(settings_env(db, config_path, now))
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env


def run_dashboard(db: str, config_path: str | None = None, host: str = "127.0.0.1",
                  port: int = 8501, now: str | None = None, open_browser: bool = True) -> int:
    """Serve the dashboard until interrupted; returns Streamlit's exit status.

    `now` (ISO-8601) anchors the relative time ranges, so a fixed history such as the
    demo sample reads as if it were live.
    """
    warning = exposure_warning(host, port)
    if warning:
        click.secho(warning, fg="red", bold=True, err=True)
    shown_host = "localhost" if is_local_host(host) else host
    url = f"http://{shown_host}:{port}"
    click.echo(f"stepscope dashboard on {url} (store: {db}); Ctrl-C stops it", err=True)
    if open_browser:
        reachable = "127.0.0.1" if is_local_host(host) or host in ("0.0.0.0", "::") else host
        reachable = f"[{reachable}]" if ":" in reachable else reachable
        open_browser_when_ready(url, f"http://{reachable}:{port}")
    return serve(streamlit_command(host, port), dashboard_environment(db, config_path, now))


def serve(command: list[str], env: dict[str, str]) -> int:
    """Run the Streamlit server until it exits; Ctrl-C or SIGTERM stop it too.

    The server is a child process: whatever ends this one (Ctrl-C, `kill`, a service
    manager) ends it as well instead of leaving it listening.
    """
    process = subprocess.Popen(command, env=env)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
