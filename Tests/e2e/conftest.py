"""Fixtures for the end-to-end suite: a real `mlflow server`, the proxy binary, an OTLP receiver, and the
real MLflow Python client running traced code. Everything listens on 127.0.0.1."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[2]
# Secrets tests configure (API keys, tokens, passwords); no proxy log may contain any of them.
KNOWN_SECRETS = {"s3cr3t-api-key", "e2e-Admin-pw-9x"}
WORKLOADS = Path(__file__).resolve().parent / "workloads"


def free_port():
    """A free port below the kernel's ephemeral range. A port from the ephemeral range (what binding port 0 gives) can
    be taken between this check and the bind that uses it, by any socket bound to port 0 meanwhile: another test's
    admin listener, a client connection (it happened under ThreadSanitizer's slow parallel run). Below the range only
    an explicit bind can take it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            ephemeral_low = int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low, high = 10000, max(10001, ephemeral_low - 1)
    for _ in range(500):
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {low} and {high}")


def wait_for(predicate, timeout=30.0, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# Set when the proxy binary under test is built with a sanitizer (Tests/scripts/test-all.sh): ASan's shadow
# memory and quarantine make RSS meaningless, so memory-bound checks run in the pass with the release binary.
SANITIZER = os.environ.get("MLFLOW_OTEL_PROXY_SANITIZER")


def get_json(url, timeout=30):
    """GET `url`: (status, parsed JSON body), also for an error status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def clean_environment(**extra):
    """The caller's environment without any MLflow or OpenTelemetry settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def client_python(version):
    """The Python of the virtualenv holding MLflow `version` (made by Tests/scripts/setup-python.sh)."""
    if version == "3.17.2":
        return sys.executable
    python = ROOT / f".venv-mlflow-{version}" / "bin" / "python"
    assert python.exists(), f"{python} is missing: run Tests/scripts/setup-python.sh"
    return str(python)


class MLflowServer:
    def __init__(self, workdir: Path, app_name=None, version="3.17.2", env=None, tls=None):
        """`tls`: serve HTTPS through uvicorn's own TLS (`certfile`, `keyfile`, and `ca` to require client
        certificates signed by it); the health check then trusts `trust` (a CA file)."""
        self.port = free_port()
        self.tls = tls
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [client_python(version), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.dir}/mlflow.db",
                "--artifacts-destination", str(self.dir / "artifacts"), "--workers", "1"]
        if app_name:
            args += ["--app-name", app_name]
        if tls:
            options = f"--ssl-certfile {tls['certfile']} --ssl-keyfile {tls['keyfile']}"
            if tls.get("ca"):
                options += f" --ssl-ca-certs {tls['ca']} --ssl-cert-reqs 2"  # 2: ssl.CERT_REQUIRED
            args += ["--uvicorn-opts", options]
        self.args = args
        self.env = env
        self._start()

    def _start(self):
        self.log = open(self.dir / "server.log", "ab")
        # Its own process group: `mlflow server` starts gunicorn/uvicorn workers, which stop() ends with it.
        # MLflow 3.x starts about ten job-runner processes (huey consumers, each importing mlflow) for server-side
        # jobs that no test here uses; they cost ~20 CPU-seconds per server start on a 2-core machine.
        environment = clean_environment(**{"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(self.env or {})})
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=environment,
                                        cwd=self.dir, start_new_session=True)
        wait_for(self._healthy, timeout=120, message="mlflow server /health")

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _healthy(self):
        if self.process.poll() is not None:
            raise AssertionError("mlflow server exited:\n" + (self.dir / "server.log").read_text()[-3000:])
        context = None
        if self.tls:
            import ssl
            context = ssl.create_default_context(cafile=self.tls["trust"])
            if self.tls.get("ca"):
                context.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2, context=context) as response:
                return response.status == 200
        except OSError:
            return False

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.url)

    def stop(self):
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(group, signal.SIGKILL)  # any worker still alive
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log.close()

    def restart(self):
        """A new server process on the same port, database and artifacts."""
        self.stop()
        self._start()


class Proxy:
    """The proxy binary, started on a free port with a clean environment."""

    BINARY = os.environ.get("MLFLOW_OTEL_PROXY_BIN", str(ROOT / ".build" / "debug" / "mlflow-otel-proxy"))

    def __init__(self, workdir: Path, args=(), env=None, expect_start=True, log_level="debug", listen="127.0.0.1:0"):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"proxy-{time.monotonic_ns()}.log"
        self.log_file = open(self.log_path, "wb")
        # A short shutdown deadline (the default is 10 s): stopping a proxy whose destination is dead or black-holed
        # waits that long. Tests of shutdown itself set their own.
        # The suite's OTLP receivers speak OTLP/HTTP, so the variables' protocol defaults to http/protobuf here; the
        # tests of MLflow's own default (grpc) pass an empty value, which OpenTelemetry's rules read as unset.
        environment = clean_environment(**{"OTEL_BSP_SCHEDULE_DELAY": "100", "MLFLOW_OTEL_PROXY_SHUTDOWN_TIMEOUT": "5",
                                           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", **(env or {})})
        self.process = subprocess.Popen([self.BINARY, *args, "--listen", listen, "--admin-listen", "127.0.0.1:0", "--log-level", log_level],
                                        stdout=self.log_file, stderr=subprocess.STDOUT, env=environment, cwd=workdir)
        self.port = None
        self.admin_port = None
        if expect_start:
            self.port = wait_for(self._listening_port, timeout=30, message="proxy to listen")
            self.admin_port = wait_for(self._admin_port, timeout=30, message="admin listener")

    def _listening_port(self):
        text = self.log()
        match = re.search(r"address=\S*:(\d+) \[MLflowOTelProxy\] listening", text)
        if match:
            return int(match.group(1))
        if self.process.poll() is not None:
            raise AssertionError("proxy exited before listening:\n" + text[-3000:])
        return None

    def _admin_port(self):
        match = re.search(r"address=\S*:(\d+) .*admin listening", self.log())
        return int(match.group(1)) if match else None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self):
        return self.log_path.read_text(errors="replace")

    def rss_peak_kib(self):
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))

    def stop(self, timeout=30):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("proxy did not stop on SIGTERM:\n" + self.log()[-3000:])
        self.log_file.close()
        return self.process.returncode


def run_workload(tracking_uri, script="agent.py", timeout=180, client="3.17.2", **env):
    """Runs a workload with the real MLflow client of version `client`; returns what it reports (trace ids and
    expected spans) and its stderr."""
    environment = clean_environment(MLFLOW_TRACKING_URI=tracking_uri, **env)
    try:
        completed = subprocess.run([client_python(client), str(WORKLOADS / script)], env=environment, capture_output=True,
                                   text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        def text(output):
            return (output.decode(errors="replace") if isinstance(output, bytes) else output or "")[-4000:]
        raise AssertionError(f"workload {script} did not finish in {timeout}s (MLFLOW_TRACKING_URI={tracking_uri}):\n"
                             f"stdout:\n{text(expired.stdout)}\nstderr:\n{text(expired.stderr)}") from None
    assert completed.returncode == 0, f"workload failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    for line in completed.stdout.splitlines():
        if line.startswith("WORKLOAD_RESULT "):
            return json.loads(line[len("WORKLOAD_RESULT "):]), completed.stderr
    raise AssertionError("workload printed no result:\n" + completed.stdout + completed.stderr)


def read_traces(tracking_uri, experiment, client="3.17.2"):
    """The experiment's traces as comparable JSON, read with the MLflow client of version `client`."""
    completed = subprocess.run([client_python(client), str(WORKLOADS / "read_traces.py"), tracking_uri, experiment],
                               env=clean_environment(MLFLOW_TRACKING_URI=tracking_uri), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def pytest_configure(config):
    # Markers that Tests/scripts/test-all.sh selects by (see its header for the tiers).
    config.addinivalue_line("markers", "serial: timing, load, memory or fault test; runs alone, after the parallel part")
    config.addinivalue_line("markers", "memory: checks RSS bounds; the bound is asserted without a sanitizer, so this also runs "
                                       "against the release binary in the full tier")
    config.addinivalue_line("markers", "release: needs the release binary built with the Dockerfile's flags "
                                       "(MLFLOW_OTEL_PROXY_RELEASE_BIN); runs in the full tier only")
    config.addinivalue_line("markers", "xdist_group(name): tests sharing an expensive module fixture run on one pytest-xdist worker")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request):
    """Whether the test that `request` belongs to failed in its setup or call."""
    return any(getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MLflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def shared_mlflow_server_still_answers(request):
    """After a test that used the worker's shared MLflow server: the server must still answer `/health`. One that
    stopped answering fails the test that left it so (with the server log's end) and is restarted, so the tests
    after it are not charged with it. After a failed test the log's end is printed too."""
    yield
    if "mlflow_server" not in request.fixturenames:
        return
    server = request.getfixturevalue("mlflow_server")

    def answers():
        try:
            return server._healthy()
        except AssertionError:
            return False

    deadline = time.monotonic() + 15
    healthy = answers()
    while not healthy and time.monotonic() < deadline:
        time.sleep(0.5)
        healthy = answers()
    log_end = (server.dir / "server.log").read_text(errors="replace")[-3000:]
    if failed(request) or not healthy:
        print(f"--- shared mlflow server {server.url}: /health ok={healthy}; server.log ends:\n{log_end}")
    if not healthy:
        server.restart()
        raise AssertionError(f"the shared mlflow server stopped answering /health during this test (restarted); its log ends:\n{log_end}")


@pytest.fixture()
def receiver():
    otlp = OTLPReceiver()
    yield otlp
    otlp.close()


@pytest.fixture()
def start_proxy(tmp_path, request):
    started = []

    def start(args=(), env=None, expect_start=True, log_level="debug", listen="127.0.0.1:0"):
        proxy = Proxy(tmp_path, args=args, env=env, expect_start=expect_start, log_level=log_level, listen=listen)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        if proxy.process.poll() is None:
            proxy.stop()
        if failed(request):
            print(f"--- proxy log {proxy.log_path} ends:\n" + proxy.log_path.read_text(errors="replace")[-6000:])
        # Every log the suite produced (at debug level) is checked for every secret any test configured.
        log = proxy.log_path.read_text(errors="replace")
        # With a sanitized binary, any report fails the test that produced it, even one at shutdown.
        for report in ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer"):
            assert report not in log, f"sanitizer report in the proxy log:\n{log[log.index(report):][:3000]}"
        for secret in KNOWN_SECRETS:
            assert secret not in log, f"a configured secret reached the proxy log: {secret[:4]}…"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an unrelated CA."""
    directory = tmp_path_factory.mktemp("pki")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
            "-subj", f"/CN=test {ca}")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        extra = ["-extfile", "san.cnf"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.pem",
            "-days", "2", *extra)
    return directory
