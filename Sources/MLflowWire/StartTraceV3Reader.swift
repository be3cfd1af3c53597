import JSONText

/// Reads a `StartTraceV3` body in one pass over its bytes (``JSONScanner``): the typed record, and where the answer's
/// edits go, so that the answer is the client's own `trace_info` text with the tags the server adds spliced in.
/// Reads what ``StartTraceV3Decoder/decodeAsTree(_:)`` reads (the same record, the same error for the same body,
/// checked against it by the tests) without building a tree of the document (a tenth of the ingest's instructions
/// went to building, walking and writing that tree).
struct StartTraceV3Reader {
    /// A member of `trace_info` the record is made from, as its first occurrence was found.
    enum Field {
        case absent
        case null
        case string(String)
        /// An object of strings (`trace_metadata`, `tags`); `badEntry`: the first member that is not a string.
        case map([String: String], badEntry: String?)
        /// Anything else.
        case other
    }

    var scanner: JSONScanner
    var traceID = Field.absent
    /// The optional string members, by their position in ``stringKeys``.
    var strings = InlineArray<6, Field>(repeating: .absent)
    var metadata = Field.absent
    var tags = Field.absent
    var experimentID: String?
    /// Where `trace_info` is in the body, and its closing brace.
    var infoRange: Range<Int>?
    /// Where the first `tags` member's value is, and what the answer edits there.
    var tagsPlace: StartTraceV3Decoder.Decoded.TagsPlace?

    /// The optional string members of `trace_info`, in the order their errors are reported (six: the size of
    /// ``strings``, which a test checks).
    static let stringKeys = ["client_request_id", "request_time", "execution_duration", "state", "request_preview", "response_preview"]
    /// The members of `trace_info` the record reads: the string members, then these.
    static let infoKeys = KeyTable(stringKeys + ["trace_id", "trace_metadata", "tags", "trace_location"])

    init(_ body: [UInt8]) {
        scanner = JSONScanner(bytes: body)
    }

    /// Reads the body: the record and the answer's places, or the error the tree reading gives for it.
    mutating func read() throws(WireError) -> StartTraceV3Decoder.Decoded {
        var foundInfo = false
        if scanner.enterObject(depth: 0) {
            var count = 0
            var seenTrace = false
            while let key = scanner.nextMember(count: &count) {
                if key == "trace" && !seenTrace {
                    seenTrace = true
                    foundInfo = readTrace()
                } else {
                    scanner.skipValue(depth: 1)
                }
                if scanner.failed { break }
            }
            if scanner.failed || !scanner.isAtEnd() { throw WireError(.malformedBody, "the body is not valid JSON") }
        } else {
            let valid = !scanner.failed && scanner.skipValue(depth: 0) && scanner.isAtEnd()
            throw WireError(.malformedBody, valid ? "the body must be a JSON object" : "the body is not valid JSON")
        }
        guard foundInfo, let infoRange else { throw WireError(.malformedBody, "the body must contain trace.trace_info") }
        let info = try record()
        // Set whenever the record could be made (tags absent, null or an object of strings).
        guard let tagsPlace else { throw WireError(.malformedBody, "trace_info.tags must be an object") }
        return StartTraceV3Decoder.Decoded(info: info, body: scanner.bytes, infoRange: infoRange, tagsPlace: tagsPlace)
    }

    /// `trace`'s members, its first `trace_info` read when it is an object; whether it was.
    private mutating func readTrace() -> Bool {
        guard scanner.kind() == .object else {
            scanner.skipValue(depth: 1)
            return false
        }
        _ = scanner.enterObject(depth: 1)
        var count = 0
        var seenInfo = false
        var found = false
        while let key = scanner.nextMember(count: &count) {
            if key == "trace_info" && !seenInfo {
                seenInfo = true
                if scanner.kind() == .object {
                    readInfo()
                    found = true
                } else {
                    scanner.skipValue(depth: 2)
                }
            } else {
                scanner.skipValue(depth: 2)
            }
            if scanner.failed { return false }
        }
        return found && !scanner.failed
    }

    /// `trace_info`'s members (at depth 2): the first of each key the record reads.
    private mutating func readInfo() {
        let start = scanner.position
        _ = scanner.enterObject(depth: 2)
        var count = 0
        var seen = 0  // the keys of infoKeys read, as bits: the first member of a key is the one read
        var tagsValue: Range<Int>?
        let stringCount = Self.stringKeys.count
        while let key = scanner.nextMember(count: &count) {
            guard let index = Self.infoKeys.index(of: key), seen & (1 << index) == 0 else {
                scanner.skipValue(depth: 3)
                if scanner.failed { return }
                continue
            }
            seen |= 1 << index
            switch index - stringCount {
            case 0: traceID = readField()
            case 1: metadata = readMap().field
            case 2:
                let valueStart = scanner.position
                let (field, place) = readMap()
                tags = field
                tagsValue = valueStart..<scanner.position
                tagsPlace = place
            case 3: experimentID = readExperiment()
            default: strings[index] = readField()
            }
            if scanner.failed { return }
        }
        infoRange = start..<scanner.position
        // The tags member is appended when there is none; a `null` one is replaced by an object.
        if tagsValue == nil {
            tagsPlace = .append(beforeInfoEnd: scanner.position - 1)
        } else if case .null = tags, let tagsValue {
            tagsPlace = .replace(tagsValue)
        }
    }

    /// A member value read as a string field: the string, `null`, or another kind (passed over).
    private mutating func readField() -> Field {
        switch scanner.kind() {
        case .string: return scanner.readString().map(Field.string) ?? .other
        case .null:
            scanner.skipValue(depth: 3)
            return .null
        default:
            scanner.skipValue(depth: 3)
            return .other
        }
    }

    /// A member value read as a map of strings (last of a key wins, as the tree reading assigns them), with the
    /// positions the answer edits when it is `tags`.
    private mutating func readMap() -> (field: Field, place: StartTraceV3Decoder.Decoded.TagsPlace?) {
        switch scanner.kind() {
        case .object:
            _ = scanner.enterObject(depth: 3)
            var result: [String: String] = [:]
            result.reserveCapacity(8)
            var badEntry: String?
            var count = 0
            var artifactLocation: Range<Int>?
            var spansLocation: Range<Int>?
            while let key = scanner.nextMember(count: &count) {
                let valueStart = scanner.position
                if scanner.kind() == .string, let text = scanner.readString() {
                    result[key] = text
                } else {
                    scanner.skipValue(depth: 4)
                    if badEntry == nil { badEntry = key }
                }
                if scanner.failed { return (.other, nil) }
                if key == StartTraceV3Decoder.artifactLocationTag && artifactLocation == nil {
                    artifactLocation = valueStart..<scanner.position
                } else if key == StartTraceV3Decoder.spansLocationTag && spansLocation == nil {
                    spansLocation = valueStart..<scanner.position
                }
            }
            let place = StartTraceV3Decoder.Decoded.TagsPlace.object(
                close: scanner.position - 1, members: count, artifactLocation: artifactLocation, spansLocation: spansLocation)
            return (.map(result, badEntry: badEntry), place)
        case .null:
            scanner.skipValue(depth: 3)
            return (.null, nil)
        default:
            scanner.skipValue(depth: 3)
            return (.other, nil)
        }
    }

    /// `trace_location.mlflow_experiment.experiment_id` when each is what it should be (no error otherwise).
    private mutating func readExperiment() -> String? {
        var result: String?
        readFirst("mlflow_experiment", depth: 3) { reader in
            reader.readFirst("experiment_id", depth: 4) { reader in
                if reader.scanner.kind() == .string {
                    result = reader.scanner.readString()
                } else {
                    reader.scanner.skipValue(depth: 5)
                }
            }
        }
        return result
    }

    /// Passes over the value at the current position (at `depth`); when it is an object, `read` is called at the value
    /// of its first member named `name`, which `read` must read or pass over.
    private mutating func readFirst(_ name: String, depth: Int, _ read: (inout StartTraceV3Reader) -> Void) {
        guard scanner.kind() == .object else {
            scanner.skipValue(depth: depth)
            return
        }
        _ = scanner.enterObject(depth: depth)
        var count = 0
        var seen = false
        while let key = scanner.nextMember(count: &count) {
            if key == name && !seen {
                seen = true
                read(&self)
            } else {
                scanner.skipValue(depth: depth + 1)
            }
            if scanner.failed { return }
        }
    }

    /// The record, or the first error in the order the tree reading checks the fields.
    private func record() throws(WireError) -> TraceInfo {
        guard case .string(let id) = traceID, !id.isEmpty else { throw WireError(.malformedBody, "trace_info.trace_id is missing or not a string") }
        func string(_ key: String) throws(WireError) -> String? {
            switch Self.stringKeys.firstIndex(of: key).map({ strings[$0] }) ?? .absent {
            case .string(let text): return text
            case .absent, .null: return nil
            case .map, .other: throw WireError(.malformedBody, "trace_info.\(key) must be a string")
            }
        }
        func map(_ field: Field, _ key: String) throws(WireError) -> [String: String] {
            switch field {
            case .absent, .null: return [:]
            case .map(let entries, let badEntry):
                if let badEntry { throw WireError(.malformedBody, "trace_info.\(key).\(badEntry) must be a string") }
                return entries
            case .string, .other: throw WireError(.malformedBody, "trace_info.\(key) must be an object")
            }
        }
        var info = TraceInfo(
            traceID: id,
            clientRequestID: try string("client_request_id"),
            experimentID: experimentID,
            requestTime: try string("request_time"),
            executionDuration: try string("execution_duration"),
            state: try string("state"),
            metadata: try map(metadata, "trace_metadata"),
            tags: try map(tags, "tags"),
            requestPreview: try string("request_preview"),
            responsePreview: try string("response_preview")
        )
        info.expectedSpanCount = TraceInfo.spanCount(sizeStats: info.metadata["mlflow.trace.sizeStats"])
        return info
    }
}
