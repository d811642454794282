"""Bearer-token auth, and the warning for a server reachable without it."""

from __future__ import annotations

from google.rpc.status_pb2 import Status
from serve_harness import ServeProcess, fixture, make_request, post, running_server, wait_for_rows

from stepscope.server.app import exposure_warning, is_loopback

TOKEN = "s3cr3t-token-for-tests"


def test_requests_without_the_token_are_401(tmp_path):
    with running_server(tmp_path / "db", token=TOKEN) as server:
        body = fixture("openai-v2.traces.pb")
        status, headers, answer = post(server.port, "/v1/traces", body)
        assert status == 401
        assert headers["www-authenticate"] == 'Bearer realm="stepscope"'
        assert "bearer token" in Status.FromString(answer).message
        wrong = {"Authorization": "Bearer not-the-token"}
        assert post(server.port, "/v1/traces", body, headers=wrong)[0] == 401
        basic = {"Authorization": f"Basic {TOKEN}"}
        assert post(server.port, "/v1/traces", body, headers=basic)[0] == 401
        # Auth comes before routing: an unauthenticated client learns nothing about paths.
        assert post(server.port, "/v1/metrics", body)[0] == 401


def test_requests_with_the_token_are_stored(tmp_path):
    with running_server(tmp_path / "db", token=TOKEN) as server:
        good = {"Authorization": f"Bearer {TOKEN}"}
        status, _, _ = post(server.port, "/v1/traces", fixture("openai-v2.traces.pb"), headers=good)
        assert status == 200
        lower_scheme = {"Authorization": f"bearer {TOKEN}"}
        request = make_request(42, spans=3).SerializeToString()
        assert post(server.port, "/v1/traces", request, headers=lower_scheme)[0] == 200
        assert wait_for_rows(tmp_path / "db", 13) == 13


def test_token_from_the_environment(tmp_path):
    server = ServeProcess(tmp_path / "db", env={"STEPSCOPE_TOKEN": TOKEN})
    try:
        body = make_request(1).SerializeToString()
        assert post(server.port, "/v1/traces", body)[0] == 401
        assert post(server.port, "/v1/traces", body,
                    headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert "auth bearer token" in server.output
    finally:
        assert server.terminate() == 0
    assert "WARNING" not in server.output


def test_loud_warning_only_beyond_localhost_without_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None
    assert "WARNING: stepscope serve listens on 0.0.0.0" in warning
    assert "NO authentication" in warning
    assert exposure_warning("0.0.0.0", TOKEN) is None
    assert exposure_warning("127.0.0.1", None) is None


def test_a_port_in_use_or_a_busy_spool_is_a_usage_error(tmp_path):
    import socket
    import subprocess
    import sys

    command = [sys.executable, "-c", "from stepscope.cli import main; main()", "serve"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*command, "--db", str(tmp_path / "a"), "--port", str(port)],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"Error: --host/--port: cannot listen on 127.0.0.1:{port}" in result.stderr

    first = ServeProcess(tmp_path / "b")
    try:
        result = subprocess.run([*command, "--db", str(tmp_path / "b"), "--port", "0"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        assert "Error: --spool: " in result.stderr
        assert "another `stepscope serve` is using this spool" in result.stderr
    finally:
        assert first.terminate() == 0
