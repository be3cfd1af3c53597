"""The Helm chart in deploy/helm/mlflow-otel-proxy: rendered with several value sets, every rendered object is
valid Kubernetes (kubernetes-validate --strict) and valid YAML (yamllint), the generated configuration file is
accepted by the proxy, and the rendered pod runs: its volumes are laid out on disk the way the kubelet would mount
them, its container command and environment are run with the real binary, and a trace from the real MLflow
client reaches an OTLP receiver with the API key from the chart's Secret.

No helm binary can be installed here (neither Debian nor PyPI ships one), so the chart is rendered by
Tests/scripts/helm-template, a small program on the engine helm itself uses (Go's text/template with sprig
3.2.3 and helm's include/tpl/toYaml/required, from Debian's Go packages); its header says what it does not do.
No Kubernetes cluster runs here either: the pod is run by laying out its volumes, a stand-in for the kubelet."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, Proxy, clean_environment, run_workload, wait_for
from spans import attributes

# helm_template builds a Go program once per worker: one worker runs the module.
pytestmark = pytest.mark.xdist_group("helm")

CHART = ROOT / "deploy" / "helm" / "mlflow-otel-proxy"
VENV_BIN = Path(sys.executable).parent
API_KEY = "s3cr3t-api-key"  # in conftest.KNOWN_SECRETS: any proxy log holding it fails the suite
RENDERED_YAMLLINT = ("{extends: default, rules: {line-length: {max: 150}, document-start: disable, "
                     "indentation: {indent-sequences: whatever}, truthy: {check-keys: false}}}")


@pytest.fixture(scope="session")
def helm_template(tmp_path_factory):
    assert shutil.which("go"), "Go is missing: Tests/scripts/install-system-packages.sh installs golang-go"
    binary = tmp_path_factory.mktemp("helm-template") / "helm-template"
    environment = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=str(binary.parent / "cache"))
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "Tests" / "scripts" / "helm-template", env=environment,
                   check=True, capture_output=True, timeout=600)
    return binary


def render(helm_template, tmp_path, values=None, name="prod"):
    args = [str(helm_template), "-name", name, "-namespace", "mlflow"]
    if values is not None:
        values_file = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        args += ["-f", str(values_file)]
    result = subprocess.run([*args, str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    output = tmp_path / f"rendered-{len(list(tmp_path.glob('rendered-*')))}.yaml"
    output.write_text(result.stdout)
    objects = [document for document in yaml.safe_load_all(result.stdout) if document]
    return output, {(item["kind"], item["metadata"]["name"]): item for item in objects}


def validate(path):
    result = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run([str(VENV_BIN / "yamllint"), "-d", RENDERED_YAMLLINT, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def only(objects, kind):
    found = [item for (item_kind, _), item in objects.items() if item_kind == kind]
    assert len(found) == 1, f"{kind}: {len(found)}"
    return found[0]


FULL_VALUES = {
    "destinations": {
        "datadog": {"profile": "datadog", "site": "datadoghq.eu", "api_key": "${file:/var/run/secrets/mlflow-otel-proxy/dd-api-key}"},
        "collector": {"protocol": "grpc", "endpoint": "otel-collector.observability:4317", "tls": {"insecure": True}},
    },
    "secrets": {"values": {"dd-api-key": "dd-0123456789abcdef"}},
    "spool": {"persistence": {"enabled": True, "size": "5Gi", "storageClassName": "fast"}, "fsync": True},
    "adminService": {"enabled": True},
    "config": {"trace_info_wait": "5s", "service": {"name": "ml-platform"}, "retry_on_failure": {"max_elapsed_time": "120s"}},
    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
}


def test_chart_files_lint_clean():
    result = subprocess.run([str(VENV_BIN / "yamllint"), "-c", str(ROOT / ".yamllint.yaml"), str(CHART / "Chart.yaml"), str(CHART / "values.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = (ROOT / "Sources" / "SharedSettings" / "ProxyVersion.swift").read_text()
    assert f'current = "{chart["appVersion"]}"' in version, "the chart's appVersion is the proxy's version"


def test_default_values_render_a_gateway(helm_template, tmp_path):
    path, objects = render(helm_template, tmp_path)
    validate(path)
    assert {kind for kind, _ in objects} == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount"}
    deployment = only(objects, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/mlflow-otel-proxy:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}["spool"]["emptyDir"]
    service = only(objects, "Service")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    # The admin listener (status page, metrics) is in no Service by default.
    assert [port["name"] for port in service["spec"]["ports"]] == ["http"]
    hpa = only(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prod-mlflow-otel-proxy"}
    config = yaml.safe_load(only(objects, "ConfigMap")["data"]["config.yaml"])
    # Defaults that start: standalone (no upstream), traces written to a file in the spool volume.
    assert "upstream" not in config and config["mode"] == "auto"
    assert config["traces_file"] == "/var/lib/mlflow-otel-proxy/spool/traces.jsonl"
    assert config["sending_queue"]["spool"]["max_bytes"] == 1073741824
    # Configuration changes are reloaded in place: no checksum that would roll the pods.
    assert "--watch-config" in container["args"]
    assert "checksum/config" not in deployment["spec"]["template"]["metadata"].get("annotations", {})


def test_full_values_render_a_statefulset_with_a_spool_volume_per_replica(helm_template, tmp_path):
    path, objects = render(helm_template, tmp_path, FULL_VALUES)
    validate(path)
    assert "Deployment" not in {kind for kind, _ in objects}
    statefulset = only(objects, "StatefulSet")
    assert statefulset["spec"]["serviceName"] == "prod-mlflow-otel-proxy-headless"
    assert ("Service", "prod-mlflow-otel-proxy-headless") in objects
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "spool" and claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert only(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["secrets"] == "/var/run/secrets/mlflow-otel-proxy"
    # The credential is in the Secret only, never in the ConfigMap or the pod spec.
    secret = only(objects, "Secret")
    assert base64.b64decode(secret["data"]["dd-api-key"]).decode() == "dd-0123456789abcdef"
    for (kind, name), item in objects.items():
        assert kind == "Secret" or "dd-0123456789abcdef" not in yaml.safe_dump(item), (kind, name)
    config = yaml.safe_load(only(objects, "ConfigMap")["data"]["config.yaml"])
    assert config["sending_queue"]["spool"]["fsync"] is True
    # With adminService on, the admin port gets a Service of its own, never the application's.
    admin = objects[("Service", "prod-mlflow-otel-proxy-admin")]
    assert [port["port"] for port in admin["spec"]["ports"]] == [9464]
    assert [port["name"] for port in objects[("Service", "prod-mlflow-otel-proxy")]["spec"]["ports"]] == ["http"]
    assert config["retry_on_failure"] == {"max_elapsed_time": "120s"}
    assert config["destinations"] == FULL_VALUES["destinations"]


def test_without_watch_config_a_changed_configuration_rolls_the_pods(helm_template, tmp_path):
    _, before = render(helm_template, tmp_path, {"watchConfig": False})
    _, after = render(helm_template, tmp_path, {"watchConfig": False, "config": {"trace_info_wait": "3s"}})
    _, same = render(helm_template, tmp_path, {"watchConfig": False, "replicaCount": 5})
    assert "--watch-config" not in only(before, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]

    def checksum(objects):
        return only(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(before) != checksum(after)
    assert checksum(before) == checksum(same)


def test_options_switch_objects_off(helm_template, tmp_path):
    values = {"autoscaling": {"enabled": False}, "replicaCount": 3, "podDisruptionBudget": {"enabled": False},
              "serviceAccount": {"create": False, "name": "platform"}, "service": {"sessionAffinity": "None"},
              "spool": {"enabled": False}, "secrets": {"existingSecret": "managed-elsewhere"}}
    path, objects = render(helm_template, tmp_path, values)
    validate(path)
    assert {kind for kind, _ in objects} == {"ConfigMap", "Deployment", "Service"}
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform"
    assert {volume["name"]: volume for volume in pod["volumes"]}["secrets"]["secret"]["secretName"] == "managed-elsewhere"
    assert "spool" not in {volume["name"] for volume in pod["volumes"]}
    assert only(objects, "Service")["spec"]["sessionAffinity"] == "None"
    assert "sending_queue" not in yaml.safe_load(only(objects, "ConfigMap")["data"]["config.yaml"])


def schema_errors(values):
    import jsonschema
    schema = json.loads((CHART / "values.schema.json").read_text())
    merged = yaml.safe_load((CHART / "values.yaml").read_text())

    def merge(base, extra):
        for key, value in extra.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return base

    merge(merged, values)
    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}" for error in validator.iter_errors(merged))


def test_the_values_schema_covers_every_value_and_rejects_mistakes():
    assert schema_errors({}) == [] and schema_errors(FULL_VALUES) == []
    schema = json.loads((CHART / "values.schema.json").read_text())

    def covered(values, node, path):
        for key, value in values.items():
            assert key in node.get("properties", {}), f"{path}{key} has no schema"
            if isinstance(value, dict) and "properties" in node["properties"][key]:
                covered(value, node["properties"][key], f"{path}{key}.")

    covered(yaml.safe_load((CHART / "values.yaml").read_text()), schema, "")
    errors = schema_errors({"destinatons": {}, "mode": "turbo", "image": {"digest": "latest"}, "upstream": {"url": "mlflow:5000"},
                            "service": {"port": 70000}})
    assert [error.split(":")[0] for error in errors] == ["", "image.digest", "mode", "service.port", "upstream.url"], errors
    assert "destinatons" in errors[0]


def readme_examples():
    text = (CHART / "README.md").read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_each_vendor_example_of_the_chart_readme_renders_and_its_configuration_is_accepted(helm_template, tmp_path):
    examples = readme_examples()
    profiles = {destination.get("profile") for example in examples for destination in example["destinations"].values()}
    assert profiles >= {"datadog", "grafana", "splunk", "newrelic", "honeycomb", "signoz", "lightstep", "dynatrace", None}
    for index, values in enumerate(examples):
        assert schema_errors(values) == [], values
        path, objects = render(helm_template, tmp_path, values)
        validate(path)
        workload = objects.get(("Deployment", "prod-mlflow-otel-proxy")) or only(objects, "StatefulSet")
        args, environment = lay_out_pod(objects, workload, tmp_path / f"example-{index}")
        check = subprocess.run([Proxy.BINARY, "check-config", "--config", args[args.index("--config") + 1]],
                               env=clean_environment(**environment), capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "mode: dual" in check.stdout and "replace-me" not in check.stdout


def test_optional_objects_and_pod_settings(helm_template, tmp_path):
    values = {"nameOverride": "tracing", "image": {"digest": "sha256:" + "a" * 64}, "priorityClassName": "platform-critical",
              "envFrom": [{"secretRef": {"name": "otel-variables"}}],
              "extraVolumes": [{"name": "ca", "configMap": {"name": "internal-ca"}}],
              "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/internal", "readOnly": True}],
              "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
                                "adminFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}}
    assert schema_errors(values) == []
    path, objects = render(helm_template, tmp_path, values)
    validate(path)
    deployment = objects[("Deployment", "prod-tracing")]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/mlflow-otel-proxy@sha256:" + "a" * 64
    assert pod["priorityClassName"] == "platform-critical"
    assert container["envFrom"] == values["envFrom"]
    assert {"name": "ca", "mountPath": "/etc/ssl/internal", "readOnly": True} in container["volumeMounts"]
    assert {"name": "ca", "configMap": {"name": "internal-ca"}} in pod["volumes"]
    policy = only(objects, "NetworkPolicy")
    assert [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]] == ["http", "admin"]
    _, renamed = render(helm_template, tmp_path, {"fullnameOverride": "mlflow-gateway"})
    assert ("Deployment", "mlflow-gateway") in renamed and ("Service", "mlflow-gateway") in renamed
    # The ServiceMonitor (a Prometheus Operator CRD: not in kubernetes-validate's schemas) scrapes the admin Service.
    _, monitored = render(helm_template, tmp_path, {"adminService": {"enabled": True}, "serviceMonitor": {"enabled": True, "labels": {"release": "kps"},
                                                    "bearerTokenSecret": {"name": "prod-mlflow-otel-proxy", "key": "admin-token"}}})
    monitor = only(monitored, "ServiceMonitor")
    admin = monitored[("Service", "prod-mlflow-otel-proxy-admin")]
    assert all(admin["metadata"]["labels"][key] == value for key, value in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"] == {"name": "prod-mlflow-otel-proxy", "key": "admin-token"}
    assert "app.kubernetes.io/component" not in monitored[("Service", "prod-mlflow-otel-proxy")]["metadata"]["labels"]
    failed = subprocess.run([str(helm_template), "-name", "prod", "-namespace", "mlflow", "--set", "serviceMonitor.enabled=true", str(CHART)],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "needs adminService.enabled" in failed.stderr


def test_the_default_pod_runs_until_ready(helm_template, tmp_path):
    path, objects = render(helm_template, tmp_path)
    args, environment = lay_out_pod(objects, only(objects, "Deployment"), tmp_path / "pod")
    proxy = Proxy(tmp_path / "run", args=args, env=environment)
    try:
        wait_for(lambda: urllib.request.urlopen(proxy.admin_url + "/readyz", timeout=10).status == 200, timeout=30, message="/readyz")
        assert "watching the configuration files for changes" in proxy.log()
        expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="helm-defaults")
        traces = tmp_path / "pod" / "spool" / "traces.jsonl"
        wait_for(lambda: traces.exists() and len(traces.read_text().splitlines()) >= 1, timeout=30, message="traces in the spool volume's file")
    finally:
        assert proxy.stop() == 0


def lay_out_pod(objects, workload, root):
    """What the kubelet does before it starts the container: every volume mount becomes a directory under `root`
    holding the ConfigMap's or the Secret's keys as files (emptyDir and claims start empty). Returns the
    container's arguments and environment with each mount path replaced by its directory."""
    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    replacements = {}
    for mount in container["volumeMounts"]:
        directory = root / mount["name"]
        directory.mkdir(parents=True)
        volume = volumes.get(mount["name"], {})
        if "configMap" in volume:
            for key, value in objects[("ConfigMap", volume["configMap"]["name"])]["data"].items():
                (directory / key).write_text(value)
        elif "secret" in volume:
            for key, value in objects[("Secret", volume["secret"]["secretName"])]["data"].items():
                (directory / key).write_bytes(base64.b64decode(value))
        replacements[mount["mountPath"]] = str(directory)

    def mounted(text):
        for mount_path, directory in replacements.items():
            text = text.replace(mount_path, directory)
        return text

    for config_file in (root / "config").iterdir():
        config_file.write_text(mounted(config_file.read_text()))
    environment = {item["name"]: mounted(item["value"]) for item in container.get("env", []) if "value" in item}
    return [mounted(argument) for argument in container["args"]], environment


def test_the_rendered_pod_runs_and_exports_with_the_secret(helm_template, tmp_path, receiver):
    values = {
        "upstream": {"url": ""},  # standalone: the proxy answers the trace API itself
        "mode": "auto",
        "destinations": {"backend": {"traces_endpoint": receiver.url + "/v1/traces",
                                     "headers": {"x-api-key": "${file:/var/run/secrets/mlflow-otel-proxy/backend-api-key}"}}},
        "secrets": {"values": {"backend-api-key": API_KEY}},
        "config": {"service": {"name": "chart-test"}, "batch": {"schedule_delay": "100ms"}},
    }
    path, objects = render(helm_template, tmp_path, values)
    validate(path)
    args, environment = lay_out_pod(objects, only(objects, "Deployment"), tmp_path / "pod")
    check = subprocess.run([Proxy.BINARY, "check-config", "--config", args[args.index("--config") + 1]], env=clean_environment(**environment),
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert API_KEY not in check.stdout + check.stderr
    assert f"directory: {tmp_path / 'pod' / 'spool'}" in check.stdout, "the spool is on, in its volume"

    # The container's own command and environment; only the listen addresses are moved to loopback ports.
    proxy = Proxy(tmp_path / "run", args=args, env=environment)
    try:
        with urllib.request.urlopen(proxy.admin_url + "/readyz", timeout=10) as response:
            assert response.status == 200
        expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="helm-chart")
        total = sum(len(item["spans"]) for item in expected)
        wait_for(lambda: len(receiver.all_spans()) >= total, timeout=60, message=f"{total} spans at the receiver")
        assert len(receiver.all_spans()) == total
        assert all(request.headers.get("x-api-key") == API_KEY for request in receiver.requests)
        resource, _, _ = receiver.all_spans()[0]
        assert attributes(resource)["service.name"] == "chart-test"
    finally:
        assert proxy.stop() == 0
    assert API_KEY not in proxy.log()
