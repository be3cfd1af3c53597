import JSONText
import OTLPProto

/// MLflow span attributes → OpenInference (Arize Phoenix): `openinference.span.kind`, `input.value` and
/// `output.value` with mime types, `llm.*` with flattened messages, `tool.*`, `retrieval.documents.*`,
/// `session.id` and `user.id`. Attributes a sender already set win.
enum OpenInferenceConventions {
    static let kinds: [String: String] = [
        "CHAT_MODEL": "LLM", "LLM": "LLM", "EMBEDDING": "EMBEDDING", "TOOL": "TOOL", "AGENT": "AGENT", "RETRIEVER": "RETRIEVER",
        "RERANKER": "RERANKER", "GUARDRAIL": "GUARDRAIL", "EVALUATOR": "EVALUATOR",
    ]

    static func apply(to span: inout Span, sessionID: String?, userID: String?) {
        let attributes = span.attributes
        var added: [KeyValue] = []
        func add(_ key: String, _ build: (inout [KeyValue]) -> Void) {
            guard attributes.value(key) == nil, !added.contains(where: { $0.key == key }) else { return }
            build(&added)
        }
        let spanType = attributes.string("mlflow.spanType") ?? "UNKNOWN"
        let kind = kinds[spanType] ?? "CHAIN"
        add("openinference.span.kind") { $0.set("openinference.span.kind", string: kind) }
        if let sessionID { add("session.id") { $0.set("session.id", string: sessionID) } }
        if let userID { add("user.id") { $0.set("user.id", string: userID) } }
        let inputs = attributes.json("mlflow.spanInputs")
        let outputs = attributes.json("mlflow.spanOutputs")
        for (prefix, key, value) in [("input", "mlflow.spanInputs", inputs), ("output", "mlflow.spanOutputs", outputs)] {
            guard let value else { continue }
            let isText = value.stringValue != nil
            // The attribute's own text when it has one (the client's JSON as written), else the value as JSON.
            let text = attributes.string(key) ?? value.contentText
            add("\(prefix).value") { $0.set("\(prefix).value", string: text) }
            add("\(prefix).mime_type") { $0.set("\(prefix).mime_type", string: isText ? "text/plain" : "application/json") }
        }
        let format = attributes.string("mlflow.message.format")
        switch kind {
        case "LLM":
            let call = MessageFormats.read(format: format, inputs: inputs, outputs: outputs)
            if let model = attributes.string("mlflow.llm.model") ?? call.responseModel ?? call.requestModel {
                add("llm.model_name") { $0.set("llm.model_name", string: model) }
            }
            if let provider = attributes.string("mlflow.llm.provider") ?? format {
                add("llm.provider") { $0.set("llm.provider", string: provider) }
                add("llm.system") { $0.set("llm.system", string: provider) }
            }
            if !call.parameters.isEmpty {
                add("llm.invocation_parameters") { $0.set("llm.invocation_parameters", json: .object(call.parameters.map { ($0.key, $0.value) })) }
            }
            let usage = attributes.json("mlflow.chat.tokenUsage")
            let prompt = usage?["input_tokens"]?.intValue ?? call.inputTokens
            let completion = usage?["output_tokens"]?.intValue ?? call.outputTokens
            if let prompt { add("llm.token_count.prompt") { $0.set("llm.token_count.prompt", int: prompt) } }
            if let completion { add("llm.token_count.completion") { $0.set("llm.token_count.completion", int: completion) } }
            if let total = usage?["total_tokens"]?.intValue ?? prompt.flatMap({ p in completion.map { p + $0 } }) {
                add("llm.token_count.total") { $0.set("llm.token_count.total", int: total) }
            }
            if let cached = call.cacheReadTokens {
                add("llm.token_count.prompt_details.cache_read") { $0.set("llm.token_count.prompt_details.cache_read", int: cached) }
            }
            let system = call.systemInstructions.isEmpty ? [] : [MessageFormats.makeMessage("system", call.systemInstructions)]
            flatten(system + call.inputMessages, prefix: "llm.input_messages", into: &added, existing: attributes)
            flatten(call.outputMessages, prefix: "llm.output_messages", into: &added, existing: attributes)
            if let tools = (attributes.json("mlflow.chat.tools") ?? call.toolDefinitions)?.arrayValue {
                for (index, tool) in tools.enumerated() {
                    add("llm.tools.\(index).tool.json_schema") { $0.set("llm.tools.\(index).tool.json_schema", json: tool) }
                }
            }
        case "EMBEDDING":
            let call = MessageFormats.read(format: format, inputs: inputs, outputs: outputs)
            if let model = attributes.string("mlflow.llm.model") ?? call.responseModel ?? call.requestModel {
                add("embedding.model_name") { $0.set("embedding.model_name", string: model) }
            }
        case "TOOL":
            add("tool.name") { $0.set("tool.name", string: span.name) }
            if let inputs { add("tool.parameters") { $0.set("tool.parameters", json: inputs) } }
        case "RETRIEVER":
            for (index, document) in (outputs?.arrayValue ?? []).enumerated() {
                let prefix = "retrieval.documents.\(index).document"
                if let content = document["page_content"] ?? document["content"] {
                    add("\(prefix).content") { $0.set("\(prefix).content", string: content.contentText) }
                }
                if let id = document["id"] ?? document["metadata"]?["doc_uri"], id != .null {
                    add("\(prefix).id") { $0.set("\(prefix).id", string: id.contentText) }
                }
                if let score = (document["score"] ?? document["metadata"]?["score"])?.doubleValue {
                    add("\(prefix).score") { $0.set("\(prefix).score", double: score) }
                }
                if let metadata = document["metadata"], metadata != .null {
                    add("\(prefix).metadata") { $0.set("\(prefix).metadata", json: metadata) }
                }
            }
        default:
            break
        }
        span.attributes = attributes + added
    }

    /// Messages in the parts format → `prefix.<i>.message.role`, `.content` (text parts joined) and
    /// `.tool_calls.<j>.tool_call.{id,function.name,function.arguments}`.
    static func flatten(_ messages: [JSONValue], prefix: String, into added: inout [KeyValue], existing: [KeyValue]) {
        guard !existing.contains(where: { $0.key.hasPrefix(prefix + ".") }) else { return }
        for (index, message) in messages.enumerated() {
            let base = "\(prefix).\(index).message"
            if let role = message["role"]?.stringValue { added.set("\(base).role", string: role) }
            let parts = message["parts"]?.arrayValue ?? []
            let texts = parts.filter { $0["type"]?.stringValue == "text" }.compactMap { $0["content"]?.contentText }
            if !texts.isEmpty { added.set("\(base).content", string: texts.joined(separator: "\n")) }
            var calls = 0
            for part in parts {
                switch part["type"]?.stringValue {
                case "tool_call":
                    let call = "\(base).tool_calls.\(calls).tool_call"
                    if let id = part["id"]?.stringValue { added.set("\(call).id", string: id) }
                    if let name = part["name"]?.stringValue { added.set("\(call).function.name", string: name) }
                    if let arguments = part["arguments"] { added.set("\(call).function.arguments", string: arguments.text) }
                    calls += 1
                case "tool_call_response":
                    if let id = part["id"]?.stringValue { added.set("\(base).tool_call_id", string: id) }
                    if let response = part["response"] { added.set("\(base).content", string: response.contentText) }
                default: break
                }
            }
        }
    }
}
