"""Hardening: connection limits (431, 400, 408, idle close, 503 over the connection limit, 413 on passthrough),
routing safety (the path the upstream sees is the one the request names; no request picks a host or a
destination), and TLS on the listener and on the admin listener with the real MLflow client."""

import http.client
import json
import socket
import ssl
import time
import urllib.request

import pytest

from captures import exchanges, is_trace_upload, replay, sent_spans
from conftest import run_workload, wait_for
from otlp_receiver import OTLPReceiver
from upstream_stubs import StubUpstream

LIMITS = {"limits": {"max_header_bytes": 4096, "request_read_timeout": "1s", "idle_timeout": "1s", "max_connections": 4}}


def write_config(tmp_path, document):
    path = tmp_path / f"config-{time.monotonic_ns()}.yaml"
    path.write_text(json.dumps(document))
    return path


def exchange(port, data, read_timeout=10):
    """Sends raw bytes and reads until the proxy closes (or the timeout): (status, headers, body, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as connection:
        connection.sendall(data)
        received = b""
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass  # the proxy closes a connection whose request it did not read; the answer was already read
    return parse_response(received) + (time.monotonic() - started,)


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return status, headers, body


def metric(proxy, name):
    text = urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def still_serves(proxy):
    status, _, body, _ = exchange(proxy.port, b"GET /api/2.0/mlflow/experiments/get-by-name?experiment_name=Default HTTP/1.1\r\n"
                                              b"Host: x\r\nConnection: close\r\n\r\n")
    assert status == 200, body


@pytest.fixture()
def limited(start_proxy, tmp_path):
    return start_proxy(["--config", str(write_config(tmp_path, LIMITS))])


def test_a_head_over_the_limit_gets_431_in_mlflow_format(limited):
    status, headers, body, _ = exchange(limited.port, b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert status == 431
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    error = json.loads(body)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE" and "4096 bytes" in error["message"]
    assert metric(limited, 'mlflow_otel_proxy_rejected_requests_total{reason="header_too_large"}') == 1
    still_serves(limited)


def test_malformed_http_gets_400_in_mlflow_format(limited):
    for garbage in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00"):
        status, _, body, _ = exchange(limited.port, garbage)
        assert status == 400, garbage
        assert json.loads(body)["error_code"] == "BAD_REQUEST"
    assert metric(limited, 'mlflow_otel_proxy_rejected_requests_total{reason="malformed_http"}') == 3
    still_serves(limited)


@pytest.mark.serial
def test_a_slow_head_gets_408_and_a_stalled_body_is_closed(limited):
    status, _, body, seconds = exchange(limited.port, b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow")
    assert status == 408 and 0.9 < seconds < 5
    assert "did not arrive" in json.loads(body)["message"]
    # A body that stops arriving: the connection is closed once the read timeout passes between two reads.
    status, _, _, seconds = exchange(limited.port, b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\n"
                                                   b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na")
    assert 0.9 < seconds < 5
    assert metric(limited, 'mlflow_otel_proxy_rejected_requests_total{reason="request_read_timeout"}') == 1
    assert metric(limited, 'mlflow_otel_proxy_connections_closed_total{reason="body_read_timeout"}') == 1
    still_serves(limited)


@pytest.mark.serial
def test_a_trickling_head_cannot_keep_a_connection_past_the_read_timeout(limited):
    # Slowloris: one header byte every 0.3 s. The read timeout counts from the head's first byte, not the last.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as connection:
        received = b""
        try:
            for byte in b"GET /version HTTP/1.1\r\nHost: x\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbb":
                connection.sendall(bytes([byte]))
                time.sleep(0.3)
                if time.monotonic() - started > 6:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            received = connection.recv(65536)
        except ConnectionResetError:
            pass
    assert time.monotonic() - started < 6, "the trickling connection was never closed"
    assert parse_response(received)[0] in (408, None)


@pytest.mark.serial
def test_an_idle_keep_alive_connection_is_closed(limited):
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as connection:
        connection.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert connection.recv(65536) == b""
        assert 0.8 < time.monotonic() - started < 5
    assert metric(limited, 'mlflow_otel_proxy_connections_closed_total{reason="idle_timeout"}') >= 1


@pytest.mark.serial
def test_connections_over_the_limit_get_503_with_retry_after_when_every_connection_is_busy(limited):
    # Busy: each of the 4 connections is sending a body (at a good rate, so none can be closed for a new one).
    held = []
    try:
        for _ in range(4):
            connection = socket.create_connection(("127.0.0.1", limited.port))
            connection.sendall(b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100000\r\n\r\n" + b" " * 5000)
            held.append(connection)
        time.sleep(0.2)
        status, headers, body, _ = exchange(limited.port, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error_code"] == "TEMPORARILY_UNAVAILABLE"
    finally:
        for connection in held:
            connection.close()
    wait_for(lambda: metric(limited, "mlflow_otel_proxy_connections_open") == 0, timeout=10, message="connections to close")
    still_serves(limited)
    assert metric(limited, 'mlflow_otel_proxy_rejected_requests_total{reason="too_many_connections"}') == 1


@pytest.mark.serial
def test_at_the_connection_limit_an_idle_or_trickling_connection_makes_room_for_a_new_one(limited):
    # As nginx reuses idle connections: 2 idle connections, 2 sending a head a byte at a time; new clients are
    # served in their place, oldest first, and the busy ones are never touched.
    idle = [socket.create_connection(("127.0.0.1", limited.port)) for _ in range(2)]
    time.sleep(0.1)
    trickling = [socket.create_connection(("127.0.0.1", limited.port)) for _ in range(2)]
    for connection in trickling:
        connection.sendall(b"GET /ver")
    time.sleep(0.2)
    served = []
    try:
        # Four new clients that keep their connections: each takes the place of the oldest evictable one.
        for _ in range(4):
            connection = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
            served.append(connection)
            started = time.monotonic()
            connection.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(65536).startswith(b"HTTP/1.1 200") and time.monotonic() - started < 1
        for connection in idle + trickling:
            connection.settimeout(5)
            assert connection.recv(100) == b"", "an evicted connection is closed without an answer"
    finally:
        for connection in idle + trickling + served:
            connection.close()
    assert metric(limited, 'mlflow_otel_proxy_connections_closed_total{reason="evicted_for_new_connection"}') == 4
    assert metric(limited, 'mlflow_otel_proxy_rejected_requests_total{reason="too_many_connections"}') == 0


@pytest.mark.serial
def test_1100_trickling_connections_do_not_stop_a_normal_client(start_proxy, tmp_path):
    # Default limits (1,024 connections). 550 send a head and 550 a body, a byte every 0.4 s each (slowloris, slow
    # POST); a normal client is served within 1 s the whole time, because a trickling connection makes room for it.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    proxy = start_proxy([])
    heads, bodies = [], []
    try:
        for index in range(1100):
            connection = socket.create_connection(("127.0.0.1", proxy.port))
            connection.setblocking(False)
            if index % 2:
                connection.send(b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
                bodies.append(connection)
            else:
                connection.send(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Pad: ")
                heads.append(connection)
        worst = 0.0
        deadline = time.monotonic() + 15
        rounds = 0
        while time.monotonic() < deadline:
            for connection in heads + bodies:
                try:
                    connection.send(b"X")
                except (BlockingIOError, BrokenPipeError, ConnectionResetError, OSError):
                    pass
            status, _, body, seconds = exchange(proxy.port, b"GET /api/2.0/mlflow/experiments/get-by-name?experiment_name=Default HTTP/1.1\r\n"
                                                            b"Host: x\r\nConnection: close\r\n\r\n", read_timeout=5)
            assert status == 200, (rounds, status, body)
            worst = max(worst, seconds)
            rounds += 1
            time.sleep(0.4)
        assert worst < 1, f"a normal request took {worst:.2f} s"
        assert rounds >= 10
        # Tricklers that kept their slot past the grace period are closed for being too slow.
        assert metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="body_too_slow"}') > 0
        assert metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="evicted_for_new_connection"}') >= 76
    finally:
        for connection in heads + bodies:
            connection.close()
    wait_for(lambda: metric(proxy, "mlflow_otel_proxy_connections_open") == 0, timeout=20, message="connections to close")
    still_serves(proxy)


SLOW_LIMITS = {"limits": {"min_body_rate": 1000, "min_body_rate_grace_period": "1s", "request_read_timeout": "10s",
                          "request_timeout": "3s", "response_write_timeout": "1s"}}


def trickle(port, head, pieces, pause, seconds=8):
    """Sends `head`, then each piece after `pause` s, until the proxy closes or answers: (answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as connection:
        connection.sendall(head)
        try:
            for piece in pieces:
                time.sleep(pause)
                connection.sendall(piece)
                if time.monotonic() - started > seconds:
                    break
            connection.settimeout(seconds)
            answer = connection.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
    return answer, time.monotonic() - started


@pytest.mark.serial
def test_a_body_below_the_minimum_rate_is_closed_after_the_grace_period_and_one_above_it_is_served(start_proxy, tmp_path):
    proxy = start_proxy(["--config", str(write_config(tmp_path, SLOW_LIMITS))])
    head = b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    # 40 bytes every 0.2 s = 200 B/s, under 1,000 B/s: closed soon after the 1 s grace, long before the body ends.
    answer, seconds = trickle(proxy.port, head % 100000, [b" " * 40] * 100, 0.2)
    assert answer == b"" and seconds < 3
    assert metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="body_too_slow"}') == 1
    # 1,000 bytes every 0.2 s = 5,000 B/s for 2 s: served.
    body = b'{"name": "steady"' + b" " * 9983 + b"}"
    answer, seconds = trickle(proxy.port, head % len(body), [body[i:i + 1000] for i in range(0, len(body), 1000)], 0.2)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="body_too_slow"}') == 1


@pytest.mark.serial
def test_a_request_that_keeps_arriving_is_closed_at_the_whole_request_deadline(start_proxy, tmp_path):
    document = {"limits": {**SLOW_LIMITS["limits"], "min_body_rate": 0}}
    proxy = start_proxy(["--config", str(write_config(tmp_path, document))])
    # A byte every 0.1 s never stalls and the rate is not judged, but the whole request may take 3 s.
    answer, seconds = trickle(proxy.port, b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                              [b" "] * 200, 0.1)
    assert answer == b"" and 2.9 < seconds < 5
    assert metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="request_timeout"}') == 1
    still_serves(proxy)


@pytest.mark.serial
def test_a_client_that_stops_reading_a_large_answer_is_closed_and_the_upstream_let_go(start_proxy, tmp_path):
    # Mock upstream: a 256 MiB answer on demand, and a way to see that the proxy stopped reading it (a real MLflow
    # server would need a 256 MiB artifact logged first; the behaviour under test is the proxy's alone).
    upstream = StubUpstream("large_answer")
    try:
        proxy = start_proxy(["--upstream", upstream.url, "--config", str(write_config(tmp_path, SLOW_LIMITS))])
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as connection:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            connection.sendall(b"GET /api/2.0/mlflow-artifacts/artifacts/0/model.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
            # Read nothing more: the proxy's send buffer fills, and 1 s later the connection is closed.
            wait_for(lambda: metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="response_write_timeout"}') == 1,
                     timeout=15, message="the write deadline to close the connection")
        wait_for(lambda: upstream.aborted, timeout=10, message="the proxy to let go of the upstream answer")
        wait_for(lambda: metric(proxy, "mlflow_otel_proxy_connections_open") == 0, timeout=10, message="connections to close")
    finally:
        upstream.close()


# Mock upstream (echo): the only way to see the exact request line and headers the upstream receives.
@pytest.fixture()
def echo():
    upstream = StubUpstream("echo")
    yield upstream
    upstream.close()


def echoed(port, target, headers=b"Host: evil.example\r\n"):
    status, _, body, _ = exchange(port, b"GET " + target + b" HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\n")
    return status, (json.loads(body) if status == 200 else json.loads(body))


def test_passthrough_body_limit_gets_413_and_streams_below_it(echo, start_proxy, tmp_path):
    proxy = start_proxy(["--upstream", echo.url, "--config", str(write_config(tmp_path, {"limits": {"max_passthrough_body_bytes": 1000}}))])
    path = b"/api/2.0/mlflow-artifacts/artifacts/1/model.bin"
    status, _, body, _ = exchange(proxy.port, b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000)
    assert status == 413 and json.loads(body)["error_code"] == "MAX_READ_SIZE_EXCEEDED"
    chunked = b"".join(b"%x\r\n" % 500 + b"y" * 500 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    status, _, body, _ = exchange(proxy.port, b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status == 413, body
    status, _, body, _ = exchange(proxy.port, b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 900\r\n\r\n" + b"z" * 900)
    assert status == 200 and json.loads(body)["body_length"] == 900
    assert metric(proxy, 'mlflow_otel_proxy_rejected_requests_total{reason="passthrough_body_too_large"}') == 2
    # A chunked body under the limit streams through whole.
    chunked = b"".join(b"%x\r\n" % 300 + b"w" * 300 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    status, _, body, _ = exchange(proxy.port, b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status == 200 and json.loads(body)["body_length"] == 900


def read_answer(connection, received=b""):
    """Reads one HTTP answer framed by Content-Length: (status, headers, body, bytes after it)."""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, f"connection closed before a whole answer head: {received!r}"
        received += chunk
    head_bytes, _, rest = received.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = connection.recv(65536)
        assert chunk, "connection closed inside an answer body"
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length], rest[length:]


@pytest.mark.serial
@pytest.mark.parametrize("pause", [0, 0.3])
@pytest.mark.parametrize("framing", ["chunked over the limit", "chunked under the limit", "length under the limit"])
def test_an_upstream_answer_before_the_body_is_passed_on_and_the_connection_closes(start_proxy, tmp_path, framing, pause):
    # Mock by necessity: a real MLflow server reads every body before answering; the stub answers 200 right after
    # the head, before reading the body, the way a server that rejects or ignores uploads may. Found as a hang
    # under TSan: the client got neither the answer's end of connection nor a 413.
    early = StubUpstream("answer_early")
    try:
        proxy = start_proxy(["--upstream", early.url, "--config", str(write_config(tmp_path, {"limits": {"max_passthrough_body_bytes": 1000}}))])
        size, count = (500, 4) if framing == "chunked over the limit" else (300, 3)  # 2000 or 900 bytes
        if framing.startswith("chunked"):
            framing_header, parts = b"Transfer-Encoding: chunked", [b"%x\r\n" % size + b"y" * size + b"\r\n" for _ in range(count)] + [b"0\r\n\r\n"]
        else:
            framing_header, parts = b"Content-Length: 900", [b"z" * 300] * 3
        head = b"PUT /api/2.0/mlflow-artifacts/artifacts/1/model.bin HTTP/1.1\r\nHost: x\r\n" + framing_header + b"\r\n\r\n"
        get = b"GET /api/2.0/mlflow/experiments/get?experiment_id=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as connection:
            connection.sendall(head)
            for part in parts:
                time.sleep(pause)
                try:
                    connection.sendall(part)
                except OSError:
                    break  # the proxy answered and closed before the whole body was sent
            status, headers, body, extra = read_answer(connection)
            # Either the upstream's answer, passed on whole, or (only when the limit was passed first) the proxy's 413.
            if status == 200:
                assert json.loads(body) == {"early": True}
            else:
                assert framing == "chunked over the limit" and status == 413 and json.loads(body)["error_code"] == "MAX_READ_SIZE_EXCEEDED"
            if headers.get("connection") == "close":
                # The rest of the body was not read: the proxy closes at once, never leaving the client hanging.
                answered = time.monotonic()
                try:
                    while connection.recv(65536):
                        pass
                except ConnectionResetError:
                    pass
                assert time.monotonic() - answered < 3, "the connection stayed open after an answer that says close"
            else:
                # The whole body was read before the answer came: the connection carries the next request.
                assert framing != "chunked over the limit"
                connection.sendall(get)
                assert read_answer(connection, extra)[0] == 200
        # Over the limit the connection never stays open; under it, a close was counted if one was answered.
        closed = metric(proxy, 'mlflow_otel_proxy_connections_closed_total{reason="upstream_answered_before_body"}')
        assert closed == (1 if status == 200 and headers.get("connection") == "close" else 0)
        status, _, _, _ = exchange(proxy.port, get.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert status == 200  # the proxy keeps serving
    finally:
        early.close()


@pytest.mark.parametrize("target, upstream_sees", [
    (b"/api/2.0/mlflow-artifacts/artifacts/1/../../../../etc/passwd", "/api/etc/passwd"),
    (b"/api/2.0/mlflow-artifacts/artifacts/1/%2e%2e/2/model.pkl?path=../x", "/api/2.0/mlflow-artifacts/artifacts/2/model.pkl?path=../x"),
    (b"/api/2.0/mlflow-artifacts/artifacts/1/.%2E/%2e/3", "/api/2.0/mlflow-artifacts/artifacts/3"),
    (b"/ajax-api/2.0/mlflow/./experiments/get?experiment_id=1", "/ajax-api/2.0/mlflow/experiments/get?experiment_id=1"),
    (b"http://evil.example:8080/api/2.0/mlflow/experiments/get?experiment_id=1", "/api/2.0/mlflow/experiments/get?experiment_id=1"),
    (b"/api/2.0/mlflow-artifacts/artifacts/1/a%2Fb", "/api/2.0/mlflow-artifacts/artifacts/1/a%2Fb"),
])
def test_the_upstream_sees_the_path_the_request_names_at_the_configured_host(echo, start_proxy, target, upstream_sees):
    proxy = start_proxy(["--upstream", echo.url])
    status, answer = echoed(proxy.port, target)
    assert status == 200
    assert answer["request_line"] == f"GET {upstream_sees} HTTP/1.1"
    # Host never routes: the upstream is the configured one, named in Host; the client's goes in X-Forwarded-Host.
    headers = {k.lower(): v for k, v in answer["headers"]}
    assert headers["host"] == f"127.0.0.1:{echo.port}"
    assert headers["x-forwarded-host"] == "evil.example"


@pytest.mark.parametrize("target", [b"/../etc/passwd", b"/api/%2e%2e/%2E%2E/x", b"/api/2.0/mlflow-artifacts/artifacts/a%00.txt",
                                    b"/api/2.0/mlflow-artifacts/artifacts/..\\..\\x", b"*"])
def test_unsafe_paths_are_rejected_before_the_upstream(echo, start_proxy, target):
    proxy = start_proxy(["--upstream", echo.url])
    status, answer = echoed(proxy.port, target)
    assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE" and "path" in answer["message"]
    assert echo.connections == []


def test_no_request_chooses_a_destination(start_proxy):
    configured, other = OTLPReceiver(), OTLPReceiver()
    try:
        proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": configured.url})
        uploads = [e for e in exchanges("3.17.2/01_sync") if is_trace_upload(e)]
        # Absolute-form targets and Host headers naming another receiver change nothing.
        statuses = replay(proxy.port, uploads, foreign_host=other.url.removeprefix("http://"))
        assert all(status == 200 for _, _, status in statuses), statuses
        wait_for(lambda: len(configured.all_spans()) >= len(sent_spans(uploads)), timeout=20, message="spans at the configured receiver")
        time.sleep(0.5)
        assert other.requests == []
    finally:
        configured.close()
        other.close()


def test_tls_listener_serves_the_real_mlflow_client_and_the_admin_listener_has_its_own(pki, tmp_path, receiver, start_proxy):
    config = {"tls": {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server.key")},
              "admin_tls": {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server.key")}}
    proxy = start_proxy(["--config", str(write_config(tmp_path, config))], env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    url = f"https://127.0.0.1:{proxy.port}"
    expected, _ = run_workload(url, MLFLOW_TRACKING_SERVER_CERT_PATH=str(pki / "ca.pem"), WORKLOAD_EXPERIMENT="tls-listener")
    want = sum(len(trace["spans"]) for trace in expected)
    wait_for(lambda: len(receiver.all_spans()) >= want, timeout=30, message="spans exported from a TLS upload")
    # Plain HTTP on the TLS port gets no HTTP answer.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as connection:
        connection.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert not connection.recv(65536).startswith(b"HTTP/1.1 200")
        except ConnectionResetError:
            pass
    # The admin listener speaks TLS with its own certificate; an untrusted CA is refused.
    trusted = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    admin = http.client.HTTPSConnection("127.0.0.1", proxy.admin_port, context=trusted, timeout=10)
    admin.request("GET", "/healthz")
    assert admin.getresponse().status == 200
    untrusted = ssl.create_default_context(cafile=str(pki / "other-ca.pem"))
    with pytest.raises(ssl.SSLError):
        other = http.client.HTTPSConnection("127.0.0.1", proxy.admin_port, context=untrusted, timeout=10)
        other.request("GET", "/healthz")


def test_the_tls_listener_tells_the_upstream_the_client_used_https_whatever_the_client_claims(pki, tmp_path, start_proxy, echo):
    document = {"tls": {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server.key")}}
    proxy = start_proxy(["--upstream", echo.url, "--config", str(write_config(tmp_path, document))])
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    connection = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=context, timeout=10)
    connection.request("GET", "/api/2.0/mlflow/experiments/list", headers={"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.7"})
    response = connection.getresponse()
    assert response.status == 200
    headers = {key.lower(): value for key, value in json.loads(response.read())["headers"]}
    assert headers["x-forwarded-proto"] == "https" and headers["x-forwarded-for"] == "127.0.0.1"


def test_listener_tls_problems_stop_start_up_with_the_reason(tmp_path, start_proxy, pki):
    half = write_config(tmp_path, {"tls": {"cert_file": str(pki / "server.pem")}})
    proxy = start_proxy(["--config", str(half)], expect_start=False)
    assert proxy.process.wait(timeout=30) != 0
    assert "setting=tls.key_file" in proxy.log() and "is required" in proxy.log()
    wrong = write_config(tmp_path, {"tls": {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "client.key")}})
    proxy = start_proxy(["--config", str(wrong)], expect_start=False)
    assert proxy.process.wait(timeout=30) != 0
    assert "cannot use" in proxy.log()


def big_otlp_upload(megabytes):
    """One OTLP/protobuf request of about `megabytes` MiB: one span with a large attribute."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes(range(1, 17))
    span.span_id = bytes(range(1, 9))
    span.name = "big"
    span.start_time_unix_nano, span.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_001_000_000_000
    attribute = span.attributes.add()
    attribute.key = "payload"
    attribute.value.string_value = "x" * (megabytes * 1024 * 1024 - 200)
    return request.SerializeToString()


@pytest.mark.serial
@pytest.mark.memory
def test_64_concurrent_32_mib_uploads_stay_within_the_body_memory_budget(start_proxy, tmp_path, receiver):
    import concurrent.futures
    from conftest import SANITIZER
    document = {"mode": "opentelemetry-only", "destinations": {"collector": {"traces_endpoint": receiver.url + "/v1/traces"}}}
    proxy = start_proxy(["--config", str(write_config(tmp_path, document))], log_level="info")
    body = big_otlp_upload(32)

    def upload(_):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=120)
        try:
            connection.request("POST", "/v1/traces", body=body,
                               headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Retry-After")
        except (BrokenPipeError, ConnectionResetError):
            return "reset", None  # refused before the body was sent whole: the answer may be lost to the reset
        finally:
            connection.close()

    baseline = proxy.rss_peak_kib()
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(upload, range(64)))
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 503, "reset"}, statuses
    assert statuses.count(200) >= 8, statuses
    assert all(retry == "1" for status, retry in results if status == 503)
    refused = metric(proxy, 'mlflow_otel_proxy_rejected_requests_total{reason="body_memory_budget"}')
    assert refused == 64 - statuses.count(200) and refused > 0
    assert metric(proxy, "mlflow_otel_proxy_request_body_bytes_in_memory") == 0
    grown_mib = (proxy.rss_peak_kib() - baseline) / 1024
    print(f"peak RSS grew by {grown_mib:.0f} MiB; {statuses.count(200)} uploads served, {refused:.0f} refused")
    if not SANITIZER:
        # The budget (256 MiB) plus a fixed overhead: decoding holds about as much again as the bodies it decodes.
        assert grown_mib < 256 + 320, f"peak RSS grew by {grown_mib:.0f} MiB"
