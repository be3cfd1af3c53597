import JSONText
import OTLPProto

/// MLflow span attributes → the OpenTelemetry GenAI semantic conventions (v1.37+; otlp-and-vendors §5).
///
/// Unlike MLflow's own translator, span names are kept, and attributes a sender already set under `gen_ai.*`
/// win over derived ones. Content goes in the opt-in attributes as JSON text in the parts format.
enum GenAIConventions {
    /// MLflow span type → `gen_ai.operation.name`. Types without a GenAI operation get none.
    static let operations: [String: String] = [
        "CHAT_MODEL": "chat", "LLM": "generate_content", "EMBEDDING": "embeddings", "TOOL": "execute_tool", "AGENT": "invoke_agent",
        "RETRIEVER": "retrieval", "CHAIN": "invoke_workflow", "WORKFLOW": "invoke_workflow",
    ]
    /// Operations that call a model or a store over the network: span kind CLIENT.
    static let clientOperations: Set<String> = ["chat", "generate_content", "text_completion", "embeddings", "retrieval"]
    /// Model-call operations, whose inputs and outputs are read as messages.
    static let modelOperations: Set<String> = ["chat", "generate_content", "text_completion"]
    /// Operations whose inputs and outputs are read (as messages, tool arguments or retrieval queries).
    static let readingOperations: Set<String> = ["chat", "generate_content", "text_completion", "embeddings", "execute_tool", "retrieval"]
    /// `mlflow.message.format` → `gen_ai.provider.name` when the span does not name its provider.
    static let providers: [String: String] = ["openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "bedrock": "aws.bedrock"]

    /// Adds the GenAI attributes of one span (keeping any the span has) and sets its kind.
    static func apply(to span: inout Span, conversationID: String?) {
        let source = SourceAttributes(span.attributes)
        var added: [KeyValue] = []
        func add(_ key: String, _ build: (inout [KeyValue]) -> Void) {
            guard !source.genAIKeys.contains(key), !added.contains(where: { $0.key == key }) else { return }
            build(&added)
        }
        let spanType = source.string(.spanType)
        let operation = source.string(.operationName) ?? spanType.flatMap { operations[$0] }
        if let operation { add("gen_ai.operation.name") { $0.set("gen_ai.operation.name", string: operation) } }
        if let conversationID { add("gen_ai.conversation.id") { $0.set("gen_ai.conversation.id", string: conversationID) } }
        let format = source.string(.messageFormat)
        if let provider = source.string(.provider)
            ?? (operation.map(modelOperations.contains) == true || operation == "embeddings" ? format.flatMap { providers[$0] } : nil)
        {
            add("gen_ai.provider.name") { $0.set("gen_ai.provider.name", string: provider) }
        }
        // Parsed only for the operations that read them (most spans of a trace are not model calls).
        let reads = operation.map(readingOperations.contains) == true
        let inputs = reads ? source.json(.inputs) : nil
        // A retriever's outputs are read only as a list of documents: parsed only when they hold a JSON array.
        let outputs = reads && (operation != "retrieval" || source.holdsJSONArray(.outputs)) ? source.json(.outputs) : nil
        switch operation {
        case "chat", "generate_content", "text_completion", "embeddings":
            let call = MessageFormats.read(format: format, inputs: inputs, outputs: outputs)
            if let model = call.requestModel ?? source.string(.model) {
                add("gen_ai.request.model") { $0.set("gen_ai.request.model", string: model) }
            }
            if let model = call.responseModel { add("gen_ai.response.model") { $0.set("gen_ai.response.model", string: model) } }
            if let id = call.responseID { add("gen_ai.response.id") { $0.set("gen_ai.response.id", string: id) } }
            if !call.finishReasons.isEmpty {
                add("gen_ai.response.finish_reasons") { $0.set("gen_ai.response.finish_reasons", strings: call.finishReasons) }
            }
            for parameter in call.parameters {
                let key = "gen_ai.request.\(parameter.key)"
                if key == "gen_ai.request.encoding_formats", let format = parameter.value.stringValue {
                    add(key) { $0.set(key, strings: [format]) }
                } else {
                    add(key) { $0.set(key, scalar: parameter.value) }
                }
            }
            // Token usage: MLflow's own attribute first (autologgers normalise it), the response's otherwise.
            let usage = source.json(.tokenUsage)
            let tokens: [(String, Int64?)] = [
                ("gen_ai.usage.input_tokens", usage?["input_tokens"]?.intValue ?? call.inputTokens),
                ("gen_ai.usage.output_tokens", usage?["output_tokens"]?.intValue ?? call.outputTokens),
                ("gen_ai.usage.cache_read.input_tokens", usage?["cache_read_input_tokens"]?.intValue ?? call.cacheReadTokens),
                ("gen_ai.usage.cache_creation.input_tokens", usage?["cache_creation_input_tokens"]?.intValue ?? call.cacheCreationTokens),
                ("gen_ai.usage.reasoning.output_tokens", call.reasoningTokens),
            ]
            for (key, value) in tokens { if let value { add(key) { $0.set(key, int: value) } } }
            if let dimensions = call.embeddingDimensions {
                add("gen_ai.embeddings.dimension.count") { $0.set("gen_ai.embeddings.dimension.count", int: dimensions) }
            }
            if operation != "embeddings" {
                if !call.inputMessages.isEmpty { add("gen_ai.input.messages") { $0.set("gen_ai.input.messages", json: .array(call.inputMessages)) } }
                if !call.outputMessages.isEmpty {
                    add("gen_ai.output.messages") { $0.set("gen_ai.output.messages", json: .array(call.outputMessages)) }
                }
                if !call.systemInstructions.isEmpty {
                    add("gen_ai.system_instructions") { $0.set("gen_ai.system_instructions", json: .array(call.systemInstructions)) }
                }
                if let tools = source.json(.tools) ?? call.toolDefinitions {
                    add("gen_ai.tool.definitions") { $0.set("gen_ai.tool.definitions", json: tools) }
                }
            }
        case "execute_tool":
            add("gen_ai.tool.name") { $0.set("gen_ai.tool.name", string: span.name) }
            add("gen_ai.tool.type") { $0.set("gen_ai.tool.type", string: "function") }
            if let inputs { add("gen_ai.tool.call.arguments") { $0.set("gen_ai.tool.call.arguments", json: inputs) } }
            if let outputs { add("gen_ai.tool.call.result") { $0.set("gen_ai.tool.call.result", json: outputs) } }
            if let id = inputs?["tool_call_id"]?.stringValue { add("gen_ai.tool.call.id") { $0.set("gen_ai.tool.call.id", string: id) } }
        case "invoke_agent":
            add("gen_ai.agent.name") { $0.set("gen_ai.agent.name", string: span.name) }
            if let model = source.string(.model) { add("gen_ai.request.model") { $0.set("gen_ai.request.model", string: model) } }
        case "invoke_workflow":
            add("gen_ai.workflow.name") { $0.set("gen_ai.workflow.name", string: span.name) }
        case "retrieval":
            add("gen_ai.data_source.id") { $0.set("gen_ai.data_source.id", string: span.name) }
            if let query = retrievalQuery(inputs) { add("gen_ai.retrieval.query.text") { $0.set("gen_ai.retrieval.query.text", string: query) } }
            if let documents = retrievalDocuments(outputs) {
                add("gen_ai.retrieval.documents") { $0.set("gen_ai.retrieval.documents", json: documents) }
            }
        default:
            break
        }
        if !added.isEmpty { span.attributes += added }
        if let operation, clientOperations.contains(operation), span.kind == .internal || span.kind == .unspecified { span.kind = .client }
    }

    /// The attributes the mapping reads, found in one pass over a span's attributes (the first of a key, as
    /// `value(_:)` finds it), and the `gen_ai.*` keys the span already has, which derived attributes never replace.
    /// One pass instead of a scan per key read or added (those scans were a tenth of the mapping's work).
    struct SourceAttributes {
        /// The attributes read, by the position of their key in ``names``.
        enum Key: Int, CaseIterable {
            case spanType, operationName, messageFormat, provider, model, inputs, outputs, tokenUsage, tools
        }
        static let names = [
            "mlflow.spanType", "gen_ai.operation.name", "mlflow.message.format", "mlflow.llm.provider", "mlflow.llm.model",
            "mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.chat.tokenUsage", "mlflow.chat.tools",
        ]
        static let table = KeyTable(names)

        private let attributes: [KeyValue]
        /// Where each key's first attribute is (-1: none); inline, so reading a span allocates nothing (one place per
        /// ``Key``: nine, which a test checks).
        private var positions = InlineArray<9, Int>(repeating: -1)
        /// The `gen_ai.*` keys among the attributes (usually none).
        private(set) var genAIKeys: [String] = []

        init(_ attributes: [KeyValue]) {
            self.attributes = attributes
            let table = Self.table
            for position in attributes.indices {
                let key = attributes[position].key
                if Self.hasGenAIPrefix(key) { genAIKeys.append(key) }
                if let index = table.index(of: key), positions[index] < 0 { positions[index] = position }
            }
        }

        /// Whether `key` starts with `gen_ai.`, read from its UTF-8 bytes.
        static func hasGenAIPrefix(_ key: String) -> Bool {
            guard key.utf8.count >= 7 else { return false }
            var key = key
            return key.withUTF8 { bytes in
                bytes[0] == 0x67 && bytes[1] == 0x65 && bytes[2] == 0x6E && bytes[3] == 0x5F && bytes[4] == 0x61
                    && bytes[5] == 0x69 && bytes[6] == 0x2E
            }
        }

        private func value(_ key: Key) -> AnyValue? {
            let position = positions[key.rawValue]
            return position < 0 ? nil : attributes[position].value
        }

        /// The string value of `key` (non-empty), as `[KeyValue].string(_:)` reads it.
        func string(_ key: Key) -> String? {
            guard case .stringValue(let text)? = value(key)?.value, !text.isEmpty else { return nil }
            return text
        }

        /// The value of `key` as JSON, as `[KeyValue].json(_:)` reads it.
        func json(_ key: Key) -> JSONValue? { value(key).flatMap { JSONValue($0) } }

        /// Whether `json(key)` would be an array (a string that `JSONValue(_:)` would parse, beginning with `[`),
        /// told without parsing it.
        func holdsJSONArray(_ key: Key) -> Bool {
            guard case .stringValue(let text)? = value(key)?.value else { return false }
            return JSONValue.leadingByte(of: text) == UInt8(ascii: "[")
        }
    }

    /// The query of a retriever call: a string input, or the `query` / `question` / `input` argument.
    static func retrievalQuery(_ inputs: JSONValue?) -> String? {
        guard let inputs else { return nil }
        if let text = inputs.stringValue { return text }
        for key in ["query", "question", "input", "text"] { if let text = inputs[key]?.stringValue { return text } }
        return nil
    }

    /// MLflow documents (`[{"page_content", "metadata", "id"}]`) as `[{"id", "score", "content"}]`.
    static func retrievalDocuments(_ outputs: JSONValue?) -> JSONValue? {
        guard let documents = outputs?.arrayValue else { return nil }
        return .array(
            documents.map { document in
                var members: [(key: String, value: JSONValue)] = []
                if let id = document["id"] ?? document["metadata"]?["doc_uri"] ?? document["metadata"]?["id"], id != .null {
                    members.append(("id", id))
                }
                if let score = document["score"] ?? document["metadata"]?["score"], score != .null { members.append(("score", score)) }
                if let content = document["page_content"] ?? document["content"] { members.append(("content", content)) }
                return .object(members)
            })
    }
}
