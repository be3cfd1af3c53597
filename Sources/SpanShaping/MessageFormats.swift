import JSONText

/// What a model call's inputs and outputs say, in the GenAI conventions' terms (messages in the parts format:
/// `[{"role": …, "parts": [{"type": "text", "content": …}]}]`).
struct ModelCall {
    var inputMessages: [JSONValue] = []
    var outputMessages: [JSONValue] = []
    var systemInstructions: [JSONValue] = []
    var toolDefinitions: JSONValue?
    var requestModel: String?
    var responseModel: String?
    var responseID: String?
    var finishReasons: [String] = []
    /// `gen_ai.request.*` parameters, in the order found.
    var parameters: [(key: String, value: JSONValue)] = []
    var inputTokens: Int64?
    var outputTokens: Int64?
    var cacheReadTokens: Int64?
    var cacheCreationTokens: Int64?
    var reasoningTokens: Int64?
    var embeddingDimensions: Int64?
}

/// Reads model-call payloads in the formats `mlflow.message.format` names: OpenAI chat completions and
/// responses, Anthropic messages, Gemini, Bedrock Converse. Unknown shapes give what they have (no guessing).
enum MessageFormats {
    static func read(format: String?, inputs: JSONValue?, outputs: JSONValue?) -> ModelCall {
        var call = ModelCall()
        switch format ?? "openai" {
        case "anthropic": readAnthropic(inputs, outputs, into: &call)
        case "gemini": readGemini(inputs, outputs, into: &call)
        case "bedrock": readBedrock(inputs, outputs, into: &call)
        default:
            if outputs?["data"] == nil && (inputs?["input"] != nil || outputs?["output"]?.arrayValue != nil) {
                readOpenAIResponses(inputs, outputs, into: &call)
            } else {
                readOpenAIChat(inputs, outputs, into: &call)
            }
        }
        return call
    }

    static func textPart(_ content: String) -> JSONValue { .object([("type", .string("text")), ("content", .string(content))]) }

    static func makeMessage(_ role: String, _ parts: [JSONValue], finishReason: String? = nil) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("role", .string(role)), ("parts", .array(parts))]
        if let finishReason { members.append(("finish_reason", .string(finishReason))) }
        return .object(members)
    }

    static func toolCallPart(id: JSONValue?, name: JSONValue?, arguments: JSONValue?) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("type", .string("tool_call"))]
        if let id { members.append(("id", id)) }
        if let name { members.append(("name", name)) }
        if let arguments {
            // OpenAI sends arguments as JSON text; the conventions carry the arguments themselves.
            if let text = arguments.stringValue, let parsed = JSONValue(parsing: text) {
                members.append(("arguments", parsed))
            } else {
                members.append(("arguments", arguments))
            }
        }
        return .object(members)
    }

    static func toolResponsePart(id: JSONValue?, response: JSONValue) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("type", .string("tool_call_response"))]
        if let id { members.append(("id", id)) }
        members.append(("response", response))
        return .object(members)
    }

    /// Request parameters shared by most formats (OpenAI names).
    static func readParameters(_ inputs: JSONValue?, into call: inout ModelCall, names: [(String, String)]) {
        for (source, target) in names {
            guard let value = inputs?[source], value != .null else { continue }
            if target == "stop_sequences", let text = value.stringValue {
                call.parameters.append((target, .array([.string(text)])))
            } else {
                call.parameters.append((target, value))
            }
        }
    }

    static let openAIParameters = [
        ("temperature", "temperature"), ("top_p", "top_p"), ("max_tokens", "max_tokens"), ("max_completion_tokens", "max_tokens"),
        ("max_output_tokens", "max_tokens"), ("stop", "stop_sequences"), ("seed", "seed"), ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"), ("n", "choice.count"), ("stream", "stream"), ("encoding_format", "encoding_formats"),
    ]

    // MARK: OpenAI chat completions (and embeddings)

    static func readOpenAIChat(_ inputs: JSONValue?, _ outputs: JSONValue?, into call: inout ModelCall) {
        call.requestModel = inputs?["model"]?.stringValue
        readParameters(inputs, into: &call, names: openAIParameters)
        if let tools = inputs?["tools"], tools != .null { call.toolDefinitions = tools }
        for message in inputs?["messages"]?.arrayValue ?? [] {
            let role = message["role"]?.stringValue ?? "user"
            var parts = contentParts(message["content"])
            for toolCall in message["tool_calls"]?.arrayValue ?? [] {
                parts.append(toolCallPart(id: toolCall["id"], name: toolCall["function"]?["name"], arguments: toolCall["function"]?["arguments"]))
            }
            if role == "system" || role == "developer" {
                call.systemInstructions += parts
            } else if role == "tool" {
                call.inputMessages.append(makeMessage("tool", [toolResponsePart(id: message["tool_call_id"], response: message["content"] ?? .null)]))
            } else {
                call.inputMessages.append(makeMessage(role, parts))
            }
        }
        guard let outputs, case .object = outputs else {
            if let text = outputs?.stringValue { call.outputMessages = [makeMessage("assistant", [textPart(text)])] }
            return
        }
        call.responseID = outputs["id"]?.stringValue
        call.responseModel = outputs["model"]?.stringValue
        for choice in outputs["choices"]?.arrayValue ?? [] {
            let finish = choice["finish_reason"]?.stringValue
            if let finish { call.finishReasons.append(finish) }
            let reply = choice["message"] ?? choice["delta"]
            var parts = contentParts(reply?["content"])
            if let text = choice["text"]?.stringValue { parts.append(textPart(text)) }
            for toolCall in reply?["tool_calls"]?.arrayValue ?? [] {
                parts.append(toolCallPart(id: toolCall["id"], name: toolCall["function"]?["name"], arguments: toolCall["function"]?["arguments"]))
            }
            call.outputMessages.append(makeMessage(reply?["role"]?.stringValue ?? "assistant", parts, finishReason: finish ?? "stop"))
        }
        if let usage = outputs["usage"] {
            call.inputTokens = usage["prompt_tokens"]?.intValue ?? usage["input_tokens"]?.intValue
            call.outputTokens = usage["completion_tokens"]?.intValue ?? usage["output_tokens"]?.intValue
            call.cacheReadTokens = usage["prompt_tokens_details"]?["cached_tokens"]?.intValue
            call.reasoningTokens = usage["completion_tokens_details"]?["reasoning_tokens"]?.intValue
        }
        if let first = outputs["data"]?.arrayValue?.first, let vector = first["embedding"]?.arrayValue {
            call.embeddingDimensions = Int64(vector.count)
        }
    }

    /// OpenAI content: a string, or a list of parts (`text`, `input_text`, `output_text`, images, …).
    static func contentParts(_ content: JSONValue?) -> [JSONValue] {
        guard let content, content != .null else { return [] }
        if let text = content.stringValue { return [textPart(text)] }
        guard let items = content.arrayValue else { return [textPart(content.text)] }
        return items.map { item in
            switch item["type"]?.stringValue {
            case "text", "input_text", "output_text": return textPart(item["text"]?.contentText ?? "")
            case "image_url", "input_image":
                var members: [(key: String, value: JSONValue)] = [("type", .string("uri")), ("modality", .string("image"))]
                if let uri = item["image_url"]?["url"] ?? item["image_url"] { members.append(("uri", uri)) }
                return .object(members)
            default: return textPart(item.contentText)
            }
        }
    }

    // MARK: OpenAI responses

    static func readOpenAIResponses(_ inputs: JSONValue?, _ outputs: JSONValue?, into call: inout ModelCall) {
        call.requestModel = inputs?["model"]?.stringValue
        readParameters(inputs, into: &call, names: openAIParameters)
        if let tools = inputs?["tools"], tools != .null { call.toolDefinitions = tools }
        if let instructions = inputs?["instructions"]?.stringValue { call.systemInstructions = [textPart(instructions)] }
        if let input = inputs?["input"] {
            if let text = input.stringValue {
                call.inputMessages = [makeMessage("user", [textPart(text)])]
            } else {
                for item in input.arrayValue ?? [] {
                    switch item["type"]?.stringValue {
                    case "function_call":
                        call.inputMessages.append(
                            makeMessage("assistant", [toolCallPart(id: item["call_id"], name: item["name"], arguments: item["arguments"])]))
                    case "function_call_output":
                        call.inputMessages.append(makeMessage("tool", [toolResponsePart(id: item["call_id"], response: item["output"] ?? .null)]))
                    default:
                        let role = item["role"]?.stringValue ?? "user"
                        let parts = contentParts(item["content"])
                        if role == "system" || role == "developer" {
                            call.systemInstructions += parts
                        } else {
                            call.inputMessages.append(makeMessage(role, parts))
                        }
                    }
                }
            }
        }
        guard let outputs else { return }
        call.responseID = outputs["id"]?.stringValue
        call.responseModel = outputs["model"]?.stringValue
        let status = outputs["status"]?.stringValue
        var parts: [JSONValue] = []
        for item in outputs["output"]?.arrayValue ?? [] {
            switch item["type"]?.stringValue {
            case "message": parts += contentParts(item["content"])
            case "function_call": parts.append(toolCallPart(id: item["call_id"], name: item["name"], arguments: item["arguments"]))
            default: break
            }
        }
        if !parts.isEmpty || status != nil {
            call.outputMessages = [makeMessage("assistant", parts, finishReason: status == "completed" ? "stop" : status ?? "stop")]
            if let status { call.finishReasons = [status == "completed" ? "stop" : status] }
        }
        if let usage = outputs["usage"] {
            call.inputTokens = usage["input_tokens"]?.intValue
            call.outputTokens = usage["output_tokens"]?.intValue
            call.cacheReadTokens = usage["input_tokens_details"]?["cached_tokens"]?.intValue
            call.reasoningTokens = usage["output_tokens_details"]?["reasoning_tokens"]?.intValue
        }
    }

    // MARK: Anthropic messages

    static func readAnthropic(_ inputs: JSONValue?, _ outputs: JSONValue?, into call: inout ModelCall) {
        call.requestModel = inputs?["model"]?.stringValue
        readParameters(
            inputs, into: &call,
            names: [
                ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("max_tokens", "max_tokens"),
                ("stop_sequences", "stop_sequences"), ("stream", "stream"),
            ])
        if let tools = inputs?["tools"], tools != .null { call.toolDefinitions = tools }
        if let system = inputs?["system"] { call.systemInstructions = anthropicParts(system) }
        for item in inputs?["messages"]?.arrayValue ?? [] {
            let parts = anthropicParts(item["content"])
            let isToolResult = parts.contains { $0["type"]?.stringValue == "tool_call_response" }
            call.inputMessages.append(makeMessage(isToolResult ? "tool" : item["role"]?.stringValue ?? "user", parts))
        }
        guard let outputs else { return }
        call.responseID = outputs["id"]?.stringValue
        call.responseModel = outputs["model"]?.stringValue
        let stop = outputs["stop_reason"]?.stringValue
        if let stop { call.finishReasons = [stop] }
        if outputs["content"] != nil {
            call.outputMessages = [
                makeMessage(outputs["role"]?.stringValue ?? "assistant", anthropicParts(outputs["content"]), finishReason: stop ?? "stop")
            ]
        }
        if let usage = outputs["usage"] {
            let cacheRead = usage["cache_read_input_tokens"]?.intValue
            let cacheCreation = usage["cache_creation_input_tokens"]?.intValue
            // Anthropic's input_tokens leave cached tokens out; the conventions' input tokens include them.
            call.inputTokens = usage["input_tokens"]?.intValue.map { $0 + (cacheRead ?? 0) + (cacheCreation ?? 0) }
            call.outputTokens = usage["output_tokens"]?.intValue
            call.cacheReadTokens = cacheRead
            call.cacheCreationTokens = cacheCreation
        }
    }

    static func anthropicParts(_ content: JSONValue?) -> [JSONValue] {
        guard let content, content != .null else { return [] }
        if let text = content.stringValue { return [textPart(text)] }
        return (content.arrayValue ?? [content]).map { block in
            switch block["type"]?.stringValue {
            case "text": return textPart(block["text"]?.contentText ?? "")
            case "tool_use": return toolCallPart(id: block["id"], name: block["name"], arguments: block["input"])
            case "tool_result": return toolResponsePart(id: block["tool_use_id"], response: block["content"] ?? .null)
            case "thinking": return .object([("type", .string("reasoning")), ("content", block["thinking"] ?? .string(""))])
            default: return textPart(block.contentText)
            }
        }
    }

    // MARK: Gemini

    static func readGemini(_ inputs: JSONValue?, _ outputs: JSONValue?, into call: inout ModelCall) {
        call.requestModel = inputs?["model"]?.stringValue
        let config = inputs?["config"] ?? inputs?["generation_config"]
        readParameters(
            config, into: &call,
            names: [
                ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("max_output_tokens", "max_tokens"),
                ("stop_sequences", "stop_sequences"), ("seed", "seed"),
            ])
        if let system = config?["system_instruction"] { call.systemInstructions = geminiParts(system["parts"] ?? system) }
        let contents = inputs?["contents"]
        if let text = contents?.stringValue {
            call.inputMessages = [makeMessage("user", [textPart(text)])]
        } else {
            for item in contents?.arrayValue ?? [] {
                if let text = item.stringValue { call.inputMessages.append(makeMessage("user", [textPart(text)])); continue }
                let parts = geminiParts(item["parts"])
                let isToolResult = !parts.isEmpty && parts.allSatisfy { $0["type"]?.stringValue == "tool_call_response" }
                let role = item["role"]?.stringValue.map { $0 == "model" ? "assistant" : $0 } ?? "user"
                call.inputMessages.append(makeMessage(isToolResult ? "tool" : role, parts))
            }
        }
        guard let outputs else { return }
        call.responseID = outputs["response_id"]?.stringValue
        call.responseModel = outputs["model_version"]?.stringValue
        for candidate in outputs["candidates"]?.arrayValue ?? [] {
            let finish = candidate["finish_reason"]?.stringValue?.lowercased()
            if let finish { call.finishReasons.append(finish) }
            let role = candidate["content"]?["role"]?.stringValue.map { $0 == "model" ? "assistant" : $0 } ?? "assistant"
            call.outputMessages.append(makeMessage(role, geminiParts(candidate["content"]?["parts"]), finishReason: finish ?? "stop"))
        }
        if let usage = outputs["usage_metadata"] {
            call.inputTokens = usage["prompt_token_count"]?.intValue
            call.outputTokens = usage["candidates_token_count"]?.intValue
            call.cacheReadTokens = usage["cached_content_token_count"]?.intValue
            call.reasoningTokens = usage["thoughts_token_count"]?.intValue
        }
    }

    static func geminiParts(_ parts: JSONValue?) -> [JSONValue] {
        guard let parts, parts != .null else { return [] }
        if let text = parts.stringValue { return [textPart(text)] }
        return (parts.arrayValue ?? [parts]).map { part in
            if let text = part["text"]?.stringValue { return textPart(text) }
            if let call = part["function_call"] { return toolCallPart(id: call["id"], name: call["name"], arguments: call["args"]) }
            if let response = part["function_response"] { return toolResponsePart(id: response["id"], response: response["response"] ?? .null) }
            return textPart(part.contentText)
        }
    }

    // MARK: Bedrock Converse

    static func readBedrock(_ inputs: JSONValue?, _ outputs: JSONValue?, into call: inout ModelCall) {
        call.requestModel = inputs?["modelId"]?.stringValue
        readParameters(
            inputs?["inferenceConfig"], into: &call,
            names: [("temperature", "temperature"), ("topP", "top_p"), ("maxTokens", "max_tokens"), ("stopSequences", "stop_sequences")])
        if let tools = inputs?["toolConfig"]?["tools"] { call.toolDefinitions = tools }
        call.systemInstructions = bedrockParts(inputs?["system"])
        for item in inputs?["messages"]?.arrayValue ?? [] {
            let parts = bedrockParts(item["content"])
            let isToolResult = parts.contains { $0["type"]?.stringValue == "tool_call_response" }
            call.inputMessages.append(makeMessage(isToolResult ? "tool" : item["role"]?.stringValue ?? "user", parts))
        }
        guard let outputs else { return }
        let stop = outputs["stopReason"]?.stringValue
        if let stop { call.finishReasons = [stop] }
        if let reply = outputs["output"]?["message"] {
            call.outputMessages = [
                makeMessage(reply["role"]?.stringValue ?? "assistant", bedrockParts(reply["content"]), finishReason: stop ?? "stop")
            ]
        }
        if let usage = outputs["usage"] {
            call.inputTokens = usage["inputTokens"]?.intValue
            call.outputTokens = usage["outputTokens"]?.intValue
            call.cacheReadTokens = usage["cacheReadInputTokens"]?.intValue
            call.cacheCreationTokens = usage["cacheWriteInputTokens"]?.intValue
        }
    }

    static func bedrockParts(_ content: JSONValue?) -> [JSONValue] {
        guard let content, content != .null else { return [] }
        return (content.arrayValue ?? [content]).map { block in
            if let text = block["text"]?.stringValue { return textPart(text) }
            if let use = block["toolUse"] { return toolCallPart(id: use["toolUseId"], name: use["name"], arguments: use["input"]) }
            if let result = block["toolResult"] { return toolResponsePart(id: result["toolUseId"], response: result["content"] ?? .null) }
            return textPart(block.contentText)
        }
    }
}
