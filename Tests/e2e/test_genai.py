"""Per-destination data policy with real client payloads: MLflow's OpenAI autolog (the real `openai` package)
calling the suite's fake OpenAI server, through the proxy, to OTLP receivers with different policies. The
`genai` output is checked against what the GenAI semantic conventions (v1.37+) require, the `openinference`
output against the OpenInference attribute names, redaction over every span of every trace."""

import json
import subprocess
import time
import urllib.request

import pytest
from conftest import clean_environment, run_workload, wait_for
from fake_openai import EMBEDDING_DIMENSIONS, FakeOpenAI
from otlp_receiver import OTLPReceiver

# genai_run is a module fixture: one worker runs the module, so the workload runs once.
pytestmark = pytest.mark.xdist_group("genai")

SECRET_EMAIL = "ops@example.com"
SECRET_KEY = "sk-proj-Zx81QvTn3LmW5cYp0RaHbKdE"
QUESTION = f"What is the weather in Paris? My key is {SECRET_KEY}"


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def decoded(receiver):
    """(resource attributes, span, attributes) of every span received."""
    return [({kv.key: value(kv.value) for kv in resource.attributes}, span, {kv.key: value(kv.value) for kv in span.attributes})
            for resource, _, span in receiver.all_spans()]


def metric(proxy, name):
    text = urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def write_config(tmp_path, document):
    path = tmp_path / "genai.yaml"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def genai_run(tmp_path_factory):
    """One run of the workload through a standalone proxy that fans out to four destinations."""
    import conftest
    tmp_path = tmp_path_factory.mktemp("genai")
    fake = FakeOpenAI()
    receivers = {name: OTLPReceiver() for name in ("full", "genai_only", "redacted", "metadata")}
    destinations = {
        "full": {"traces_endpoint": receivers["full"].url + "/v1/traces", "semconv": ["mlflow", "genai", "openinference"]},
        "genai_only": {"traces_endpoint": receivers["genai_only"].url + "/v1/traces", "semconv": "genai"},
        "redacted": {"traces_endpoint": receivers["redacted"].url + "/v1/traces",
                     "redaction": {"mask_json_paths": ["$.messages[*].content", "$.input"],
                                   "mask_patterns": ["preset:email", "preset:api_key"],
                                   "drop_attributes": ["mlflow.trace.request_preview", "mlflow.trace.response_preview"]}},
        "metadata": {"traces_endpoint": receivers["metadata"].url + "/v1/traces", "semconv": ["mlflow", "genai", "openinference"],
                     "redaction": {"metadata_only": True}},
    }
    proxy = conftest.Proxy(tmp_path, args=["--config", str(write_config(tmp_path, {"destinations": destinations}))], env=None,
                           expect_start=True, log_level="debug")
    try:
        result, _ = run_workload(proxy.url, script="genai_openai.py", FAKE_OPENAI_URL=fake.url, WORKLOAD_QUESTION=QUESTION)
        for receiver in receivers.values():
            wait_for(lambda: len({s.trace_id for _, _, s in receiver.all_spans()}) >= 3 and len(receiver.all_spans()) >= 7,
                     timeout=60, message="the workload's spans at every receiver")
        yield {name: decoded(receiver) for name, receiver in receivers.items()}, proxy, fake
    finally:
        proxy.stop()
        fake.close()
        for receiver in receivers.values():
            receiver.close()


def by_operation(spans, operation):
    return [(resource, span, attributes) for resource, span, attributes in spans if attributes.get("gen_ai.operation.name") == operation]


def test_genai_conventions_for_chat_completions_with_tools(genai_run):
    spans = genai_run[0]["full"]
    chats = by_operation(spans, "chat")
    assert len(chats) == 3, [a.get("gen_ai.operation.name") for _, _, a in spans]  # two completions and one responses call
    completions = sorted((c for c in chats if c[2].get("gen_ai.response.id", "").startswith("chatcmpl")), key=lambda c: c[1].start_time_unix_nano)
    assert len(completions) == 2
    for _, span, attributes in completions:
        assert span.kind == span.SPAN_KIND_CLIENT  # model calls are CLIENT spans
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
        assert attributes["gen_ai.conversation.id"] == "conv-42"
        assert span.name != "chat gpt-4o-mini"  # span names are kept
        tools = json.loads(attributes["gen_ai.tool.definitions"])
        assert tools[0]["function"]["name"] == "get_weather"
        assert json.loads(attributes["gen_ai.system_instructions"]) == [
            {"type": "text", "content": "You are a weather assistant. Escalations: ops@example.com"}]
        assert attributes["mlflow.spanType"] == "CHAT_MODEL"  # the default keeps MLflow's attributes too
    (_, _, first), (_, _, final) = completions
    assert first["gen_ai.response.id"] == "chatcmpl-tool-1" and first["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert first["gen_ai.usage.input_tokens"] == 31 and first["gen_ai.usage.output_tokens"] == 9
    assert first["gen_ai.request.temperature"] == 0.2 and first["gen_ai.request.max_tokens"] == 100
    assert json.loads(first["gen_ai.input.messages"]) == [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
    assert json.loads(first["gen_ai.output.messages"]) == [{"role": "assistant", "finish_reason": "tool_calls", "parts": [
        {"type": "tool_call", "id": "call_weather_1", "name": "get_weather", "arguments": {"city": "Paris"}}]}] or \
        json.loads(first["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "tool_call", "id": "call_weather_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert final["gen_ai.response.finish_reasons"] == ["stop"] and final["gen_ai.usage.input_tokens"] == 52
    inputs = json.loads(final["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[1]["parts"][0]["type"] == "tool_call" and inputs[1]["parts"][0]["name"] == "get_weather"
    assert inputs[2]["parts"] == [{"type": "tool_call_response", "id": "call_weather_1", "response": json.dumps({"city": "Paris", "forecast": "sunny"})}]
    assert json.loads(final["gen_ai.output.messages"])[0]["parts"] == [{"type": "text", "content": "It is sunny in Paris."}]


def test_genai_conventions_for_tools_agents_retrievers_responses_and_embeddings(genai_run):
    spans = genai_run[0]["full"]
    (_, tool_span, tool), = by_operation(spans, "execute_tool")
    assert tool["gen_ai.tool.name"] == "get_weather" and tool_span.kind == tool_span.SPAN_KIND_INTERNAL
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"city": "Paris"}
    assert json.loads(tool["gen_ai.tool.call.result"]) == {"city": "Paris", "forecast": "sunny"}
    (_, agent_span, agent), = by_operation(spans, "invoke_agent")
    assert agent["gen_ai.agent.name"] == "weather_agent" and agent_span.name == "weather_agent"
    assert agent["session.id"] == "conv-42" and agent["gen_ai.conversation.id"] == "conv-42"
    (_, retriever_span, retriever), = by_operation(spans, "retrieval")
    assert retriever_span.kind == retriever_span.SPAN_KIND_CLIENT
    assert retriever["gen_ai.retrieval.query.text"] == QUESTION
    assert json.loads(retriever["gen_ai.retrieval.documents"])[0]["id"] == "doc-1"
    (_, _, response), = [c for c in by_operation(spans, "chat") if c[2].get("gen_ai.response.id") == "resp_1"]
    assert json.loads(response["gen_ai.input.messages"]) == [{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}]
    assert json.loads(response["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(response["gen_ai.output.messages"])[0]["parts"] == [{"type": "text", "content": "Hi!"}]
    assert response["gen_ai.usage.input_tokens"] == 11 and response["gen_ai.usage.output_tokens"] == 2
    (_, embedding_span, embedding), = by_operation(spans, "embeddings")
    assert embedding_span.kind == embedding_span.SPAN_KIND_CLIENT
    assert embedding["gen_ai.embeddings.dimension.count"] == EMBEDDING_DIMENSIONS
    assert embedding["gen_ai.request.model"] == "text-embedding-3-small"


def test_openinference_attributes(genai_run):
    spans = genai_run[0]["full"]
    kinds = sorted(a["openinference.span.kind"] for _, _, a in spans)
    assert kinds.count("LLM") == 3 and kinds.count("TOOL") == 1 and kinds.count("RETRIEVER") == 1 and kinds.count("AGENT") == 1
    assert kinds.count("EMBEDDING") == 1
    (_, _, first), = [(r, s, a) for r, s, a in spans if a.get("gen_ai.response.id") == "chatcmpl-tool-1"]
    assert first["llm.model_name"] == "gpt-4o-mini-2024-07-18" and first["llm.provider"] == "openai"
    assert first["llm.token_count.prompt"] == 31 and first["llm.token_count.completion"] == 9 and first["llm.token_count.total"] == 40
    assert first["llm.input_messages.0.message.role"] == "system" and first["llm.input_messages.1.message.content"] == QUESTION
    assert first["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "get_weather"
    assert first["input.mime_type"] == "application/json" and json.loads(first["input.value"])["model"] == "gpt-4o-mini"
    assert json.loads(first["llm.invocation_parameters"]) == {"temperature": 0.2, "max_tokens": 100}
    (_, _, tool), = [(r, s, a) for r, s, a in spans if a.get("openinference.span.kind") == "TOOL"]
    assert tool["tool.name"] == "get_weather"
    (_, _, retriever), = [(r, s, a) for r, s, a in spans if a.get("openinference.span.kind") == "RETRIEVER"]
    assert retriever["retrieval.documents.0.document.id"] == "doc-1"
    assert retriever["retrieval.documents.0.document.content"] == "Paris has a mild climate."
    assert retriever["session.id"] == "conv-42" and retriever["user.id"] == "alice"


def test_genai_only_drops_span_level_mlflow_attributes_but_keeps_trace_level_data(genai_run):
    spans = genai_run[0]["genai_only"]
    for _, _, attributes in spans:
        span_level = [k for k in attributes if k.startswith("mlflow.") and not k.startswith("mlflow.trace.") and k != "mlflow.trace_id"]
        assert span_level == [], span_level
        assert not any(k.startswith(("openinference.", "llm.")) for k in attributes)
    roots = [a for _, s, a in spans if not s.parent_span_id]
    assert len(roots) == 3 and all("mlflow.trace_id" in a for a in roots)
    assert any(a.get("mlflow.trace.metadata.mlflow.trace.session") == "conv-42" for a in roots)


def all_strings(span, attributes):
    texts = [span.name, span.status.message]
    for item in attributes.values():
        texts.append(json.dumps(item) if not isinstance(item, str) else item)
    for event in span.events:
        texts += [str(value(kv.value)) for kv in event.attributes]
    return texts


def test_redaction_masks_every_span_of_every_trace(genai_run):
    spans, proxy, _ = genai_run
    redacted = spans["redacted"]
    assert len(redacted) == len(spans["full"])
    for _, span, attributes in redacted:
        for text in all_strings(span, attributes):
            assert SECRET_EMAIL not in text and SECRET_KEY not in text, (span.name, text[:300])
        assert "mlflow.trace.request_preview" not in attributes and "mlflow.trace.response_preview" not in attributes
    # The chat content under $.messages[*].content is masked in MLflow's inputs and so in the derived messages.
    (_, _, first), = [(r, s, a) for r, s, a in redacted if a.get("gen_ai.response.id") == "chatcmpl-tool-1"]
    assert [m["content"] for m in json.loads(first["mlflow.spanInputs"])["messages"]] == ["***", "***"]
    assert json.loads(first["gen_ai.input.messages"])[0]["parts"][0]["content"] == "***"
    assert "What is the weather" not in first["mlflow.spanInputs"]
    assert metric(proxy, 'mlflow_otel_proxy_values_masked_total{destination="redacted"}') > 0
    assert metric(proxy, 'mlflow_otel_proxy_attributes_redacted_total{destination="redacted"}') > 0


def test_metadata_only_sends_no_content(genai_run):
    spans = genai_run[0]["metadata"]
    assert len(spans) == len(genai_run[0]["full"])
    content = ["Paris", "sunny", "weather assistant", "Say hi", "Hi!", "hello world", "Be brief", SECRET_EMAIL]
    for _, span, attributes in spans:
        for text in all_strings(span, attributes)[2:]:
            for word in content:
                assert word not in text, (span.name, text[:200])
    (_, _, first), = [(r, s, a) for r, s, a in spans if a.get("gen_ai.response.id") == "chatcmpl-tool-1"]
    assert first["gen_ai.usage.input_tokens"] == 31 and first["llm.token_count.prompt"] == 31
    assert first["gen_ai.operation.name"] == "chat" and first["gen_ai.request.model"] == "gpt-4o-mini"
    assert "gen_ai.input.messages" not in first and "mlflow.spanInputs" not in first and "input.value" not in first


def test_size_limits_trim_a_huge_span_and_split_a_big_trace(tmp_path, start_proxy):
    receiver = OTLPReceiver()
    try:
        config = {"destinations": {"small": {"traces_endpoint": receiver.url + "/v1/traces", "max_request_bytes": 1_000_000}}}
        proxy = start_proxy(["--config", str(write_config(tmp_path, config))])
        result, _ = run_workload(proxy.url, script="big_spans.py")
        wait_for(lambda: len(receiver.all_spans()) >= result["spans"], timeout=90, message="every span at the receiver")
        time.sleep(0.5)
        spans = decoded(receiver)
        assert len(spans) == result["spans"]  # nothing dropped
        assert len({s.span_id for _, s, _ in spans}) == result["spans"]
        assert len(receiver.requests) >= 10 and all(len(request.raw) <= 1_000_000 for request in receiver.requests), \
            [len(request.raw) for request in receiver.requests]
        (_, huge, attributes), = [(r, s, a) for r, s, a in spans if s.name == "huge_input"]
        assert "mlflow.spanInputs" in attributes["mlflow_otel_proxy.truncated"]
        document = json.loads(attributes["mlflow.spanInputs"])  # still valid JSON, shorter
        assert document["document"]["title"] == "big" and len(attributes["mlflow.spanInputs"]) < 1_000_000
        chunks = [a for _, s, a in spans if s.name == "chunk"]
        assert len(chunks) == 25 and all("mlflow_otel_proxy.truncated" not in a for a in chunks)  # fitted whole
        assert metric(proxy, 'mlflow_otel_proxy_values_trimmed_total{destination="small"}') >= 1
        assert metric(proxy, "mlflow_otel_proxy_spans_dropped_total") == 0
    finally:
        receiver.close()


def test_attribute_limits_and_routing(tmp_path, start_proxy):
    receivers = {name: OTLPReceiver() for name in ("limited", "only_tools", "sampled_out", "other_experiment")}
    # Every span of the agent workload goes to "limited"; "only_tools" gets TOOL spans, "sampled_out" nothing,
    # "other_experiment" every trace without the tag team=wire.
    try:
        config = {"destinations": {
            "limited": {"traces_endpoint": receivers["limited"].url + "/v1/traces",
                        "limits": {"max_attribute_value_length": 100, "max_attributes_per_span": 12}},
            "only_tools": {"traces_endpoint": receivers["only_tools"].url + "/v1/traces", "routing": {"include": {"span_types": ["TOOL"]}}},
            "sampled_out": {"traces_endpoint": receivers["sampled_out"].url + "/v1/traces", "routing": {"sample_ratio": 0}},
            "other_experiment": {"traces_endpoint": receivers["other_experiment"].url + "/v1/traces",
                                 "routing": {"exclude": {"tags": ["team=wire"]}}},
        }}
        proxy = start_proxy(["--config", str(write_config(tmp_path, config))])
        result, _ = run_workload(proxy.url)  # agent.py: trace tags team=wire, TOOL and CHAT_MODEL spans
        wait_for(lambda: len(receivers["limited"].all_spans()) >= 6 and len(receivers["only_tools"].all_spans()) >= 2
                 and len(receivers["other_experiment"].all_spans()) >= 1,
                 timeout=30, message="spans at the receivers")
        time.sleep(1)
        for _, span, attributes in decoded(receivers["limited"]):
            assert len(span.attributes) <= 12
            for key, text in attributes.items():
                if isinstance(text, str):
                    assert len(text) <= 100, key
                    if text.startswith(("{", "[")) and key in attributes.get("mlflow_otel_proxy.truncated", []):
                        json.loads(text)  # truncated JSON stays JSON
        assert any(span.dropped_attributes_count > 0 for _, span, _ in decoded(receivers["limited"]))
        assert {a["mlflow.spanType"] for _, _, a in decoded(receivers["only_tools"])} == {"TOOL"}
        assert receivers["sampled_out"].requests == []
        # The tagged trace is excluded whole; the untagged `boom` trace goes.
        assert sorted(s.name for _, s, _ in decoded(receivers["other_experiment"])) == ["boom"]
        assert metric(proxy, 'mlflow_otel_proxy_spans_filtered_total{destination="sampled_out",reason="sampling"}') > 0
        assert metric(proxy, 'mlflow_otel_proxy_spans_filtered_total{destination="other_experiment",reason="routing"}') > 0
    finally:
        for receiver in receivers.values():
            receiver.close()


@pytest.fixture()
def phoenix(tmp_path):
    """Arize Phoenix (from .venv-phoenix, made by Tests/scripts/setup-python.sh) on 127.0.0.1 free ports."""
    from conftest import ROOT, free_port
    binary = ROOT / ".venv-phoenix" / "bin" / "phoenix"
    assert binary.exists(), f"{binary} is missing: run Tests/scripts/setup-python.sh"
    port = free_port()
    environment = clean_environment(PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=port, PHOENIX_GRPC_PORT=free_port(),
                                    PHOENIX_WORKING_DIR=tmp_path / "phoenix", PHOENIX_TELEMETRY_ENABLED="false")
    log = open(tmp_path / "phoenix.log", "wb")
    process = subprocess.Popen([str(binary), "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return urllib.request.urlopen(url + "/healthz", timeout=2).status == 200
        except OSError:
            assert process.poll() is None, (tmp_path / "phoenix.log").read_text()[-3000:]
            return False
    try:
        wait_for(healthy, timeout=120, interval=0.5, message="Phoenix to serve")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_openinference_output_is_shown_by_phoenix_as_llm_tool_and_retriever_spans(tmp_path, start_proxy, phoenix):
    fake = FakeOpenAI()
    try:
        config = {"destinations": {"phoenix": {"traces_endpoint": phoenix + "/v1/traces", "semconv": ["openinference"]}}}
        proxy = start_proxy(["--config", str(write_config(tmp_path, config))])
        run_workload(proxy.url, script="genai_openai.py", FAKE_OPENAI_URL=fake.url)

        def phoenix_spans():
            answer = json.load(urllib.request.urlopen(phoenix + "/v1/projects/default/spans?limit=100", timeout=10))
            return answer["data"] if len(answer["data"]) >= 7 else None
        spans = wait_for(phoenix_spans, timeout=60, interval=0.5, message="the spans in Phoenix")
        kinds = sorted(span["span_kind"] for span in spans)
        assert kinds == ["AGENT", "EMBEDDING", "LLM", "LLM", "LLM", "RETRIEVER", "TOOL"], kinds
        (tool,) = [s for s in spans if s["span_kind"] == "TOOL"]
        assert tool["name"] == "get_weather" and tool["attributes"]["tool.name"] == "get_weather"
        (retriever,) = [s for s in spans if s["span_kind"] == "RETRIEVER"]
        assert retriever["attributes"]["retrieval.documents.0.document.id"] == "doc-1"
        first = [s for s in spans if s["span_kind"] == "LLM" and s["attributes"].get("llm.token_count.prompt") == 31]
        assert len(first) == 1 and first[0]["attributes"]["llm.model_name"] == "gpt-4o-mini-2024-07-18"
        assert first[0]["attributes"]["session.id"] == "conv-42"
        assert metric(proxy, 'mlflow_otel_proxy_spans_exported_total{destination="phoenix"}') == 7
    finally:
        fake.close()
