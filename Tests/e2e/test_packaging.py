"""Packaging: the Dockerfile lints clean, every manifest is valid YAML and valid Kubernetes, and the release
binary built with the Dockerfile's flags runs the image's entry command (no Docker engine runs here, so the
image itself is not built; the same binary and command are run on the host)."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, clean_environment, free_port, wait_for

VENV_BIN = Path(sys.executable).parent
MANIFESTS = sorted(str(p) for p in (ROOT / "deploy" / "kubernetes").rglob("*.yaml"))


def test_dockerfile_lints_clean():
    result = subprocess.run([str(VENV_BIN / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_yaml_is_valid():
    result = subprocess.run([str(VENV_BIN / "yamllint"), "-c", str(ROOT / ".yamllint.yaml"), str(ROOT / "deploy")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert len(MANIFESTS) >= 2
    result = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", *MANIFESTS], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = result.stdout + result.stderr
    for kind in ("deployment", "service", "horizontalpodautoscaler", "poddisruptionbudget", "configmap", "secret"):
        assert f"resource {kind}/" in kinds, kind


def run_the_image_entry_command(binary, tmp_path, idle_rss_limit_mib=None):
    """Runs `binary serve` with the image's ENV on loopback addresses, as the container's ENTRYPOINT + CMD do; with
    `idle_rss_limit_mib`, checks its resident memory once it is up and before it served anything but `/healthz`."""
    port, admin = free_port(), free_port()
    env = clean_environment(MLFLOW_OTEL_PROXY_LISTEN=f"127.0.0.1:{port}", MLFLOW_OTEL_PROXY_ADMIN_LISTEN=f"127.0.0.1:{admin}",
                            MLFLOW_OTEL_PROXY_SPOOL_DIR=str(tmp_path / "spool"))
    if idle_rss_limit_mib is not None:
        # The binary's cached pages are dropped first, so that start-up reads it from disk as a container reads its
        # image's: a build just written maps ~4 MiB more pages at start-up (the kernel maps around each touched page
        # according to how the file entered the page cache).
        fd = os.open(binary, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    with open(tmp_path / "image.log", "wb") as log:
        process = subprocess.Popen([binary, "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            def healthy():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=2) as response:
                        return response.status == 200
                except OSError:
                    assert process.poll() is None, (tmp_path / "image.log").read_text()[-3000:]
                    return False

            wait_for(healthy, timeout=30, message="/healthz of the image's entry command")
            if idle_rss_limit_mib is not None:
                status = Path(f"/proc/{process.pid}/status").read_text()
                rss_kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
                assert rss_kib <= idle_rss_limit_mib * 1024, f"idle RSS {rss_kib / 1024:.1f} MiB, over {idle_rss_limit_mib} MiB"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
                assert response.read().decode() == "3.17.2"  # standalone: the embedded default
            # The image's HEALTHCHECK command, as written in the Dockerfile, with the image's admin variable.
            healthcheck = json.loads(re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
            assert healthcheck[0] == "/usr/local/bin/mlflow-otel-proxy" and "curl" not in (ROOT / "Dockerfile").read_text()
            probe_env = clean_environment(MLFLOW_OTEL_PROXY_ADMIN_LISTEN=f"0.0.0.0:{admin}")
            assert subprocess.run([binary, *healthcheck[1:]], env=probe_env, capture_output=True).returncode == 0
            closed = clean_environment(MLFLOW_OTEL_PROXY_ADMIN_LISTEN=f"127.0.0.1:{free_port()}")
            failed = subprocess.run([binary, *healthcheck[1:]], env=closed, capture_output=True, text=True)
            assert failed.returncode == 1 and "did not answer" in failed.stderr
        finally:
            process.terminate()
            assert process.wait(timeout=30) == 0


def test_the_image_entry_command_serves_standalone(tmp_path):
    """The binary under test (debug, sanitized or release, per tier) with the image's command and environment."""
    from conftest import Proxy
    run_the_image_entry_command(Proxy.BINARY, tmp_path)


@pytest.mark.release
def test_release_binary_links_swift_statically_and_runs_the_image_entry_command(tmp_path):
    binary = os.environ.get("MLFLOW_OTEL_PROXY_RELEASE_BIN")
    assert binary, ("MLFLOW_OTEL_PROXY_RELEASE_BIN must name the binary of `swift build -c release --static-swift-stdlib` "
                    "(Tests/scripts/test-all.sh --full sets it)")
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    assert "libswiftCore" not in linked, "the Swift standard library must be linked statically"
    with open(binary, "rb") as file:
        header = file.read(18)
    # ET_DYN: still a position-independent executable (ASLR), although linked for a small footprint (Package.swift).
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[16:18], "little") == 3, "the release binary must stay a PIE"
    # The container's build at idle with the image's settings (admin listener, spool), read from disk: 23.2-23.7 MiB
    # with the start-up functions placed together and jemalloc (#20's target is 30 MiB; BENCHMARKS.md, idle RSS); the
    # bound leaves 2 MiB for another kernel's page mapping and fails when the placement is lost (29-31 MiB).
    run_the_image_entry_command(binary, tmp_path, idle_rss_limit_mib=26)


@pytest.mark.release
def test_release_binary_allocates_with_jemalloc_in_every_library_and_the_image_installs_what_it_links():
    """One allocator in the process: the binary, glibc itself and every shared library it loads call jemalloc's
    malloc family (a pointer allocated by one allocator and freed by the other would corrupt the heap), and the
    image's runtime stage installs the Debian package of every shared library the binary links."""
    binary = os.environ.get("MLFLOW_OTEL_PROXY_RELEASE_BIN")
    assert binary, "MLFLOW_OTEL_PROXY_RELEASE_BIN must name the release binary (Tests/scripts/test-all.sh --full sets it)"
    result = subprocess.run([binary, "--version"], env={**clean_environment(), "LD_DEBUG": "bindings"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    # ld.so's lines: "binding file A [0] to B [0]: normal symbol `malloc' [GLIBC_2.2.5]"
    bindings = re.findall(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `(\w+)'", result.stderr)
    allocation = {"malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc",
                  "malloc_usable_size"}
    allocation_bindings = [(caller, provider, symbol) for caller, provider, symbol in bindings if symbol in allocation]
    callers = {Path(caller).name for caller, _, _ in allocation_bindings}
    assert {"libc.so.6", Path(binary).name} <= callers, allocation_bindings
    not_jemalloc = [binding for binding in allocation_bindings if Path(binding[1]).name != "libjemalloc.so.2"]
    assert not not_jemalloc, f"allocation functions bound elsewhere than jemalloc: {not_jemalloc}"

    runtime_stage = (ROOT / "Dockerfile").read_text().split("FROM debian:bookworm-slim", 1)[1]
    installed = set(re.search(r"apt-get install -y --no-install-recommends ([^\\&\n]+)", runtime_stage).group(1).split())
    base_image = {"libc6", "libgcc-s1", "libstdc++6"}  # in debian:bookworm-slim (apt itself needs them)
    libraries = re.findall(r"=> (/\S+) \(", subprocess.run(["ldd", binary], capture_output=True, text=True).stdout)
    for library in libraries:
        # With merged /usr, dpkg knows a library under the path its package installed (/lib/... or /usr/lib/...),
        # which need not be the one ldd prints.
        paths = {library, os.path.realpath(library)}
        paths |= {path.removeprefix("/usr") if path.startswith("/usr/") else "/usr" + path for path in paths}
        owners = [subprocess.run(["dpkg", "-S", path], capture_output=True, text=True) for path in sorted(paths)]
        packages = {owner.stdout.split(":")[0] for owner in owners if owner.returncode == 0}
        assert len(packages) == 1, f"{library}: owned by {packages or 'no Debian package'}"
        package = packages.pop()
        assert package in installed | base_image, f"{library} ({package}) is not installed by the image's runtime stage"
    assert "Tests/scripts/build-release.sh" in (ROOT / "Dockerfile").read_text(), "the image builds as CI does"


def test_the_sidecar_manifests_start_the_proxy_first_and_give_it_a_spool():
    import yaml
    native = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "sidecar.yaml").read_text()) if d["kind"] == "Deployment"][0]
    pod = native["spec"]["template"]["spec"]
    proxy = pod["initContainers"][0]
    assert proxy["name"] == "mlflow-otel-proxy" and proxy["restartPolicy"] == "Always" and proxy["startupProbe"]
    assert [container["name"] for container in pod["containers"]] == ["app"]
    assert {"name": "spool", "mountPath": "/var/lib/mlflow-otel-proxy/spool"} in proxy["volumeMounts"]
    assert any(volume["name"] == "spool" for volume in pod["volumes"])
    legacy = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "sidecar-legacy.yaml").read_text()) if d["kind"] == "Deployment"][0]
    containers = {container["name"]: container for container in legacy["spec"]["template"]["spec"]["containers"]}
    assert {"name": "spool", "mountPath": "/var/lib/mlflow-otel-proxy/spool"} in containers["mlflow-otel-proxy"]["volumeMounts"]
