import Foundation
import JSONText
import OTLPExport
import OTLPProto
import ProxyConfig
import ProxySettings
import SharedSettings
import SwiftProtobuf
import Testing

@testable import SpanShaping

/// The per-destination data policy without a network: the message formats the GenAI mapping
/// reads (Anthropic, Gemini, Bedrock: the OpenAI formats are tested end to end with the real `openai` package
/// in Tests/e2e/test_genai.py), redaction, size limits, routing and sampling, and the configuration keys.
@Suite struct SpanShapingTests {
    static func span(
        _ name: String = "s", type: String? = nil, attributes: [String: String] = [:], parent: Bool = false, trace: UInt8 = 1
    ) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.name = name
        span.traceID = Data(repeating: trace, count: 16)
        span.spanID = Data((0..<8).map { _ in UInt8.random(in: 0...255) })
        if parent { span.parentSpanID = Data(repeating: 9, count: 8) }
        span.kind = .internal
        var all = attributes
        if let type { all["mlflow.spanType"] = type }
        for key in all.keys.sorted() { span.attributes.set(key, string: all[key] ?? "") }
        return span
    }

    static func trace(_ spans: [Opentelemetry_Proto_Trace_V1_Span], experiment: String = "1") -> [Opentelemetry_Proto_Trace_V1_ResourceSpans] {
        var item = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        item.resource.attributes.set("mlflow.experiment_id", string: experiment)
        item.scopeSpans = [.with { $0.spans = spans }]
        return [item]
    }

    static func attributes(_ span: Opentelemetry_Proto_Trace_V1_Span) -> [String: Opentelemetry_Proto_Common_V1_AnyValue] {
        Dictionary(span.attributes.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    static func json(_ text: String?) -> JSONValue? { text.flatMap { JSONValue(parsing: $0) } }

    // MARK: Message formats

    @Test func anthropicMessagesWithToolUse() throws {
        let inputs = Self.json(
            #"{"model": "claude-sonnet-4", "max_tokens": 256, "system": "Be terse.", "tools": [{"name": "lookup", "input_schema": {}}], "messages": [{"role": "user", "content": "Find x"}, {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "x"}}]}, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "x=1"}]}]}"#
        )
        let outputs = Self.json(
            #"{"id": "msg_1", "model": "claude-sonnet-4-20250514", "role": "assistant", "content": [{"type": "text", "text": "x is 1"}], "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 4, "cache_read_input_tokens": 5}}"#
        )
        var span = Self.span("Messages.create", type: "CHAT_MODEL", attributes: ["mlflow.message.format": "anthropic"])
        span.attributes.set("mlflow.spanInputs", json: try #require(inputs))
        span.attributes.set("mlflow.spanOutputs", json: try #require(outputs))
        GenAIConventions.apply(to: &span, conversationID: nil)
        let attributes = Self.attributes(span)
        #expect(attributes["gen_ai.provider.name"]?.stringValue == "anthropic")
        #expect(attributes["gen_ai.request.model"]?.stringValue == "claude-sonnet-4")
        #expect(attributes["gen_ai.response.id"]?.stringValue == "msg_1")
        #expect(attributes["gen_ai.request.max_tokens"]?.intValue == 256)
        #expect(attributes["gen_ai.usage.input_tokens"]?.intValue == 25)  // cached tokens included, as the conventions say
        #expect(attributes["gen_ai.usage.cache_read.input_tokens"]?.intValue == 5)
        #expect(Self.json(attributes["gen_ai.system_instructions"]?.stringValue)?.text == #"[{"type":"text","content":"Be terse."}]"#)
        let messages = try #require(Self.json(attributes["gen_ai.input.messages"]?.stringValue)?.arrayValue)
        #expect(messages.map { $0["role"]?.stringValue } == ["user", "assistant", "tool"])
        #expect(messages[1]["parts"]?.text == #"[{"type":"tool_call","id":"tu_1","name":"lookup","arguments":{"q":"x"}}]"#)
        #expect(messages[2]["parts"]?.text == #"[{"type":"tool_call_response","id":"tu_1","response":"x=1"}]"#)
        #expect(
            Self.json(attributes["gen_ai.output.messages"]?.stringValue)?.text
                == #"[{"role":"assistant","parts":[{"type":"text","content":"x is 1"}],"finish_reason":"end_turn"}]"#)
        #expect(span.kind == .client)
    }

    @Test func geminiAndBedrockConverse() throws {
        let gemini = MessageFormats.read(
            format: "gemini",
            inputs: Self.json(
                #"{"model": "gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"function_call": {"name": "f", "args": {"a": 1}}}]}, {"role": "user", "parts": [{"function_response": {"name": "f", "response": {"ok": true}}}]}], "config": {"temperature": 0.5, "system_instruction": "sys"}}"#
            ),
            outputs: Self.json(
                #"{"candidates": [{"content": {"role": "model", "parts": [{"text": "done"}]}, "finish_reason": "STOP"}], "usage_metadata": {"prompt_token_count": 7, "candidates_token_count": 2}, "model_version": "gemini-2.5-flash-001"}"#
            ))
        #expect(gemini.inputMessages.map { $0["role"]?.stringValue } == ["user", "assistant", "tool"])
        #expect(gemini.systemInstructions.first?["content"]?.stringValue == "sys")
        #expect(gemini.outputMessages.first?["role"]?.stringValue == "assistant")
        #expect(gemini.finishReasons == ["stop"] && gemini.inputTokens == 7 && gemini.outputTokens == 2)
        #expect(gemini.parameters.first?.key == "temperature")

        let bedrock = MessageFormats.read(
            format: "bedrock",
            inputs: Self.json(
                #"{"modelId": "anthropic.claude-3-haiku", "system": [{"text": "sys"}], "messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 50, "topP": 0.9}}"#
            ),
            outputs: Self.json(
                #"{"output": {"message": {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]}}, "stopReason": "tool_use", "usage": {"inputTokens": 9, "outputTokens": 3}}"#
            ))
        #expect(bedrock.requestModel == "anthropic.claude-3-haiku")
        #expect(bedrock.systemInstructions.first?["content"]?.stringValue == "sys")
        #expect(bedrock.parameters.map(\.key) == ["top_p", "max_tokens"])
        #expect(bedrock.outputMessages.first?["parts"]?.text == #"[{"type":"tool_call","id":"t1","name":"f","arguments":{"a":1}}]"#)
        #expect(bedrock.finishReasons == ["tool_use"] && bedrock.inputTokens == 9)
    }

    @Test func attributesASenderSetWinAndUnmappedTypesGetNoOperation() {
        var span = Self.span("my_step", type: "PARSER")
        GenAIConventions.apply(to: &span, conversationID: "c1")
        #expect(Self.attributes(span)["gen_ai.operation.name"] == nil)
        #expect(Self.attributes(span)["gen_ai.conversation.id"]?.stringValue == "c1")
        var chat = Self.span("call", type: "CHAT_MODEL", attributes: ["gen_ai.request.model": "mine", "mlflow.llm.model": "theirs"])
        GenAIConventions.apply(to: &chat, conversationID: nil)
        #expect(chat.attributes.filter { $0.key == "gen_ai.request.model" }.map(\.value.stringValue) == ["mine"])
        #expect(chat.name == "call")
    }

    /// A retriever's outputs become documents when they are a JSON array (after spaces and line feeds, as the
    /// parser reads them), whatever else they are they give none, and its inputs give the query either way.
    @Test func retrieverDocumentsComeOnlyFromAnArrayOfOutputs() throws {
        let documents = #"[{"page_content": "Paris", "metadata": {"doc_uri": "d1"}}]"#
        for (outputs, expected) in [
            (documents, #"[{"id":"d1","content":"Paris"}]"#), ("\n  " + documents, #"[{"id":"d1","content":"Paris"}]"#),
            (#"{"documents": []}"#, nil), ("\t" + documents, nil), ("not json", nil), ("[broken", nil),
        ] {
            var span = Self.span(
                "search", type: "RETRIEVER", attributes: ["mlflow.spanInputs": #"{"query": "weather"}"#, "mlflow.spanOutputs": outputs])
            GenAIConventions.apply(to: &span, conversationID: nil)
            let attributes = Self.attributes(span)
            #expect(attributes["gen_ai.retrieval.query.text"]?.stringValue == "weather")
            #expect(attributes["gen_ai.retrieval.documents"]?.stringValue == expected, "\(outputs)")
        }
    }

    /// The mapping's one-pass reader finds what a scan per key finds (the first attribute of a key; a non-string or
    /// empty first value reads as no string even when a later one is a string) and lists the sender's `gen_ai.*` keys.
    @Test func theOnePassReaderAgreesWithAScanPerKey() {
        // Nine: the size of the reader's inline position table.
        #expect(GenAIConventions.SourceAttributes.names.count == 9 && GenAIConventions.SourceAttributes.Key.allCases.count == 9)
        let keys =
            GenAIConventions.SourceAttributes.names + [
                "gen_ai.request.model", "gen_ai.x", "gen_ai.", "gen_ai", "mlflow.spanTyp", "mlflow.spanTypes", "other",
            ]
        let values: [AnyValue] = [
            .with { $0.stringValue = "CHAT_MODEL" }, .with { $0.stringValue = "" }, .with { $0.stringValue = #"{"a": [1, 2]}"# },
            .with { $0.intValue = 7 }, .with { $0.boolValue = true }, AnyValue(),
        ]
        for _ in 0..<500 {
            let attributes: [KeyValue] = (0..<Int.random(in: 0...12)).map { _ in
                .with {
                    $0.key = keys.randomElement() ?? ""
                    $0.value = values.randomElement() ?? AnyValue()
                }
            }
            let source = GenAIConventions.SourceAttributes(attributes)
            for key in GenAIConventions.SourceAttributes.Key.allCases {
                let name = GenAIConventions.SourceAttributes.names[key.rawValue]
                #expect(source.string(key) == attributes.string(name))
                #expect(source.json(key) == attributes.json(name))
            }
            #expect(source.genAIKeys == attributes.map(\.key).filter { $0.hasPrefix("gen_ai.") })
        }
    }

    // MARK: Redaction

    @Test func patternsPathsAndMetadataOnly() throws {
        let redactor = Redactor(
            RedactionSettings(
                dropAttributes: ["secret.*", "x?y"], maskJSONPaths: ["$..password", "$.messages[-1].content"],
                maskPatterns: ["preset:email", "preset:api_key", "preset:card_number", "internal-[0-9]+"]))
        var span = Self.span(
            attributes: [
                "mlflow.spanInputs": #"{"messages": [{"content": "a"}, {"content": "mail bob@corp.io"}], "auth": {"password": "p"}}"#,
                "note": "card 4111 1111 1111 1111, key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX, ref internal-42",
                "secret.token": "t", "xzy": "1", "keep": "k",
            ])
        span.events = [.with { $0.attributes.set("exception.message", string: "failed for bob@corp.io") }]
        #expect(redactor.maskPaths(in: &span) == 2)
        #expect(redactor.maskPatterns(in: &span) == 2)  // values changed: the note and the event (the path already masked the e-mail in the inputs)
        #expect(redactor.dropAttributes(in: &span) == 2)
        let attributes = Self.attributes(span)
        #expect(attributes["mlflow.spanInputs"]?.stringValue == #"{"messages":[{"content":"a"},{"content":"***"}],"auth":{"password":"***"}}"#)
        #expect(attributes["note"]?.stringValue == "card ***, key ***, ref ***")
        #expect(attributes["secret.token"] == nil && attributes["xzy"] == nil && attributes["keep"] != nil)
        #expect(span.events[0].attributes[0].value.stringValue == "failed for ***")

        let metadata = Redactor(RedactionSettings(metadataOnly: true))
        var call = Self.span(
            type: "CHAT_MODEL",
            attributes: ["mlflow.spanInputs": "{}", "gen_ai.input.messages": "[]", "gen_ai.usage.input_tokens": "1", "custom.prompt": "p"])
        call.events = [
            .with {
                $0.attributes.set("exception.type", string: "E"); $0.attributes.set("exception.message", string: "m")
            }
        ]
        _ = metadata.stripContent(of: &call)
        #expect(call.attributes.map(\.key).sorted() == ["gen_ai.usage.input_tokens", "mlflow.spanType"])
        #expect(call.events[0].attributes.map(\.key) == ["exception.type"])
    }

    @Test func patternsRunOnValuesCutNearTheLimitAndASecretAcrossTheLimitIsMaskedWhole() {
        var policy = DataPolicy(conventions: [.mlflow])
        policy.redaction.maskPatterns = ["preset:api_key"]
        policy.limits.maxAttributeValueLength = 1000
        let shaper = DestinationShaper(policy: policy)
        // In `note` a key starts 10 characters before the limit; in `far` a key follows 4 MiB, never scanned (values
        // are cut at the limit plus a margin first), so only `note` counts as masked.
        let value = String(repeating: "a", count: 990) + " sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX " + String(repeating: "b", count: 4 << 20)
        let far = String(repeating: "b", count: 4 << 20) + " sk-proj-ZYXWVUTSRQPONMLKJIHGFEDC"
        let (shaped, outcome) = shaper.shape(Self.trace([Self.span("root", attributes: ["note": value, "far": far])]))
        let note = shaped.first?.scopeSpans.first?.spans.first.map { Self.attributes($0)["note"]?.stringValue } ?? nil
        #expect(note?.count == 1000)
        #expect(note?.contains("sk-") == false && note?.contains(" *** ") == true)
        #expect(outcome.masked == 1 && outcome.trimmed == 2)
    }

    // MARK: Size limits

    @Test func truncationKeepsJSONValidAndWithinTheLimit() throws {
        let big =
            #"{"a": ""# + String(repeating: "x", count: 5000) + #"", "list": ["# + (0..<500).map { "\"item\($0)\"" }.joined(separator: ", ") + "]}"
        for limit in [64, 100, 1000, 4095] {
            let cut = try #require(SizeLimiter.truncate(big, to: limit))
            #expect(cut.count <= limit)
            #expect(JSONValue(parsing: cut) != nil, "limit \(limit): \(cut)")
        }
        #expect(SizeLimiter.truncate("short", to: 64) == nil)
        #expect(SizeLimiter.truncate(String(repeating: "é", count: 200), to: 100)?.count == 100)

        var span = Self.span(attributes: ["mlflow.spanInputs": big, "a": "1", "b": "2", "c": "3"])
        #expect(SizeLimiter.truncateValues(in: &span, limit: 200) == 1)
        #expect(span.attributes.first?.key == SizeLimiter.truncatedAttribute)
        #expect(SizeLimiter.capAttributes(of: &span, limit: 3) == 2)
        #expect(span.attributes.count == 3 && span.droppedAttributesCount == 2)
        span.events = (0..<5).map { index in
            var event = Opentelemetry_Proto_Trace_V1_Span.Event()
            event.name = "e\(index)"
            return event
        }
        span.droppedEventsCount = 1
        #expect(SizeLimiter.capEvents(of: &span, limit: 2) == 3)
        #expect(span.events.map(\.name) == ["e0", "e1"] && span.droppedEventsCount == 4)
        #expect(SizeLimiter.capEvents(of: &span, limit: 2) == 0)
    }

    @Test func splitKeepsEverySpanUnderTheBudget() throws {
        var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
        for index in 0..<20 { spans.append(Self.span("s\(index)", attributes: ["data": String(repeating: "d", count: 50_000)])) }
        spans.append(Self.span("huge", attributes: ["data": String(repeating: "h", count: 2_000_000)]))
        let item = try #require(Self.trace(spans).first)
        let (pieces, trimmed) = DestinationShaper.split(item, budget: 200_000)
        #expect(trimmed > 0)
        #expect(pieces.flatMap { $0.scopeSpans.flatMap(\.spans) }.count == 21)
        for piece in pieces { #expect(try (piece.serializedBytes() as [UInt8]).count <= 200_000) }
        #expect(pieces.count >= 6)
    }

    // MARK: Routing and sampling

    @Test func routingByExperimentTagAndSpanTypeAndConsistentSampling() {
        var policy = DataPolicy(conventions: [.mlflow])
        policy.routing.includeExperimentIDs = ["1"]
        policy.routing.excludeTags = ["env=dev"]
        policy.routing.excludeSpanTypes = ["PARSER"]
        let shaper = DestinationShaper(policy: policy)
        let root = Self.span("root", type: "CHAIN", attributes: ["mlflow.trace.tag.env": "prod"])
        let child = Self.span("p", type: "PARSER", parent: true)
        let (kept, outcome) = shaper.shape(Self.trace([root, child]))
        #expect(kept.flatMap { $0.scopeSpans.flatMap(\.spans) }.map(\.name) == ["root"] && outcome.filtered == 1)
        #expect(shaper.shape(Self.trace([root], experiment: "2")).spans.isEmpty)
        let dev = Self.span("root", attributes: ["mlflow.trace.tag.env": "dev"])
        #expect(shaper.shape(Self.trace([dev])).outcome.filtered == 1)

        var sampled = 0
        for index in 0..<2000 {
            var id = [UInt8](repeating: 0, count: 16)
            for byte in 0..<16 { id[byte] = UInt8(truncatingIfNeeded: (index &* 2_654_435_761) >> (byte % 4 * 8) ^ byte &* 31) }
            let decision = DestinationShaper.sampled(traceID: id, ratio: 0.25)
            #expect(decision == DestinationShaper.sampled(traceID: id, ratio: 0.25))  // the same trace, the same answer
            if decision { sampled += 1 }
            if DestinationShaper.sampled(traceID: id, ratio: 0.1) { #expect(decision) }  // a lower ratio samples a subset
        }
        #expect((300...700).contains(sampled))

        // Through the shaper: a trace is kept or sampled out whole, by its id, only when the ratio is below 1.
        var trace = Self.trace([Self.span("root"), Self.span("child", parent: true)])
        for (ratio, kept) in [(1.0, 2), (0.0, 0)] {
            var sampling = DataPolicy(conventions: [.mlflow])
            sampling.routing.sampleRatio = ratio
            let (spans, outcome) = DestinationShaper(policy: sampling).shape(trace)
            #expect(spans.flatMap { $0.scopeSpans.flatMap(\.spans) }.count == kept && outcome.sampledOut == 2 - kept, "ratio \(ratio)")
        }
        // A ratio of a half: the trace's id decides, and the same trace with the id's last bytes flipped falls on the
        // other side of it.
        var half = DataPolicy(conventions: [.mlflow])
        half.routing.sampleRatio = 0.5
        let id = [UInt8](trace[0].scopeSpans[0].spans[0].traceID)
        let expected = DestinationShaper.sampled(traceID: id, ratio: 0.5)
        #expect(DestinationShaper(policy: half).shape(trace).outcome.sampledOut == (expected ? 0 : 2))
        var flipped = id
        flipped[8] ^= 0x80
        for span in trace[0].scopeSpans[0].spans.indices { trace[0].scopeSpans[0].spans[span].traceID = Data(flipped) }
        #expect(DestinationShaper(policy: half).shape(trace).outcome.sampledOut == (expected ? 2 : 0))
    }

    @Test func newRelicGetsItsAIMonitoringResourceAttributeOnGenAITracesOnly() {
        var policy = DataPolicy()
        policy.genAIResourceAttributes = [ResourceAttribute("aiEnabledApp", "true")]
        let shaper = DestinationShaper(policy: policy)
        let genAI = shaper.shape(Self.trace([Self.span("c", type: "CHAT_MODEL")])).spans
        #expect(genAI.first?.resource.attributes.contains { $0.key == "aiEnabledApp" && $0.value.stringValue == "true" } == true)
        let plain = shaper.shape(Self.trace([Self.span("c", type: "PARSER")])).spans
        #expect(plain.first?.resource.attributes.contains { $0.key == "aiEnabledApp" } == false)
    }

    // MARK: Configuration

    @Test func configurationKeysAndProfileDefaults() throws {
        let yaml = """
            destinations:
              dd: { profile: datadog, api_key: k, llm_observability: true }
              nr: { profile: newrelic, license_key: k }
              custom:
                endpoint: http://127.0.0.1:4318
                semconv: [openinference, mlflow]
                redaction: { mask_json_paths: ["$.messages[*].content"], mask_patterns: ["preset:email", "\\\\d{4}"], metadata_only: true }
                limits: { max_attribute_value_length: 2000, max_attributes_per_span: 64 }
                routing: { include: { experiment_ids: ["1"] }, exclude: { tags: [team=x], span_types: [PARSER] }, sample_ratio: 0.5 }
            """
        let configuration = try ProxyConfiguration.load(environment: [:], fileText: yaml)
        let byName = Dictionary(uniqueKeysWithValues: configuration.destinations.map { ($0.name, $0) })
        let dd = try #require(byName["dd"])
        #expect(dd.policy.conventions == [.genai] && dd.headers.contains { $0.key == "dd-otlp-source" && $0.value == "llmobs" })
        let nr = try #require(byName["nr"])
        #expect(nr.policy.limits.maxAttributeValueLength == 4095 && nr.policy.conventions == [.mlflow, .genai])
        #expect(nr.policy.genAIResourceAttributes == [ResourceAttribute("aiEnabledApp", "true")])
        let custom = try #require(byName["custom"])
        #expect(custom.policy.conventions == [.openinference, .mlflow])
        #expect(custom.policy.redaction.metadataOnly && custom.policy.redaction.maskPatterns == ["preset:email", "\\d{4}"])
        #expect(custom.policy.limits == SpanSizeLimits(maxAttributeValueLength: 2000, maxAttributesPerSpan: 64))
        #expect(custom.policy.routing.sampleRatio == 0.5 && custom.policy.routing.excludeTags == ["team=x"])
        #expect(configuration.redactedYAML.contains("semconv: [openinference, mlflow]"))
        #expect(configuration.redactedYAML.contains("mask_patterns: ['preset:email', '***']"))
    }

    @Test func environmentSwitchesChooseTheOTLPDestinationsConventions() throws {
        let endpoint = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]
        #expect(try ProxyConfiguration.load(environment: endpoint).destinations.first?.policy.conventions == [.mlflow, .genai])
        let mlflowSwitch = endpoint.merging(["MLFLOW_ENABLE_OTEL_GENAI_SEMCONV": "true"]) { a, _ in a }
        #expect(try ProxyConfiguration.load(environment: mlflowSwitch).destinations.first?.policy.conventions == [.genai])
        let list = endpoint.merging(["MLFLOW_OTEL_PROXY_SEMCONV": "openinference, mlflow"]) { a, _ in a }
        #expect(try ProxyConfiguration.load(environment: list).destinations.first?.policy.conventions == [.openinference, .mlflow])
        #expect(throws: ConfigurationError.self) {
            try ProxyConfiguration.load(environment: endpoint.merging(["MLFLOW_OTEL_PROXY_SEMCONV": "otel"]) { a, _ in a })
        }
    }

    @Test func badPolicySettingsAreNamed() {
        let yaml = """
            destinations:
              bad:
                endpoint: http://127.0.0.1:4318
                semconv: [genai, otel]
                redaction: { mask_json_paths: ["messages[*]"], mask_patterns: ["(unclosed", "preset:phone"] }
                limits: { max_attribute_value_length: 10 }
                routing: { sample_ratio: 2 }
                llm_observability: true
            """
        do {
            _ = try ProxyConfiguration.load(environment: [:], fileText: yaml)
            Issue.record("a bad policy was accepted")
        } catch {
            let settings = error.problems.map(\.setting)
            for expected in [
                "destinations.bad.semconv", "destinations.bad.redaction.mask_json_paths[0]", "destinations.bad.redaction.mask_patterns[0]",
                "destinations.bad.redaction.mask_patterns[1]", "destinations.bad.limits.max_attribute_value_length",
                "destinations.bad.routing.sample_ratio", "destinations.bad.llm_observability",
            ] {
                #expect(settings.contains(expected), "\(expected) not in \(settings)")
            }
        }
    }
}

/// Attributes and events changed in place (``Opentelemetry_Proto_Trace_V1_Span/modifyAttributes(_:)``): the span
/// ends up with the changed arrays, what the change returns is returned, and a copy of the span made before
/// keeps its own values (the storage it shares is not written through).
@Suite struct SpanInPlaceChangeTests {
    @Test func changesInPlaceAndKeepsCopiesApart() {
        var span = SpanShapingTests.span("s", attributes: ["a": "1", "b": "2"])
        span.events = [
            .with {
                $0.name = "e"; $0.attributes.set("x", string: "1")
            }
        ]
        let copy = span
        let count = span.modifyAttributes { attributes in
            attributes.set("c", string: "3")
            attributes[0].value.stringValue = "changed"
            return attributes.count
        }
        span.modifyEvents { events in
            events[0].attributes[0].value.stringValue = "changed"
            events.append(.with { $0.name = "f" })
        }
        #expect(count == 3)
        #expect(span.attributes.map(\.key) == ["a", "b", "c"] && span.attributes[0].value.stringValue == "changed")
        #expect(span.events.map(\.name) == ["e", "f"] && span.events[0].attributes[0].value.stringValue == "changed")
        #expect(copy.attributes.map(\.key) == ["a", "b"] && copy.attributes[0].value.stringValue == "1")
        #expect(copy.events.map(\.name) == ["e"] && copy.events[0].attributes[0].value.stringValue == "1")
        var thrown = span
        #expect(throws: CancellationError.self) { try thrown.modifyAttributes { _ in throw CancellationError() } }
        #expect(thrown == span)
    }
}
