import Foundation
import OTLPBinary
import OTLPProto
import OTLPTranslation
import SwiftProtobuf
import TestSupport
import Testing

/// The hand-written codec against SwiftProtobuf, the reference: real captured uploads, random messages covering
/// every field, and damaged bytes. The decoder must give what SwiftProtobuf gives (or fail where it fails); the
/// encoder must write SwiftProtobuf's bytes exactly.
@Suite struct OTLPBinaryTests {
    typealias Request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest

    /// Every protobuf `/v1/traces` body the three MLflow clients sent in the captures (uncompressed ones).
    static func capturedUploads() throws -> [Data] {
        var bodies: [Data] = []
        for version in ["2.22.5", "3.1.4", "3.17.2"] {
            let root = CaptureReplay.directory("\(version)/01_sync").deletingLastPathComponent()
            for scenario in try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() {
                guard let exchanges = try? CaptureReplay.exchanges("\(version)/\(scenario)") else { continue }
                for exchange in exchanges where exchange.method == "POST" && exchange.path.hasSuffix("/v1/traces") {
                    guard exchange.headers["content-type"]?.contains("protobuf") == true, exchange.headers["content-encoding"] == nil else {
                        continue
                    }
                    bodies.append(exchange.body)
                }
            }
        }
        return bodies
    }

    static func fast(_ bytes: [UInt8]) throws -> Request {
        try bytes.withUnsafeBytes { raw in try TraceRequestDecoder.decodeFast(raw) }
    }

    static func decode(_ bytes: [UInt8]) throws -> Request {
        try bytes.withUnsafeBytes { raw in try TraceRequestDecoder.decode(raw) }
    }

    @Test func capturedUploadsDecodeOnTheFastPathAsSwiftProtobufDecodesThem() throws {
        let bodies = try Self.capturedUploads()
        try #require(bodies.count >= 5)
        for body in bodies {
            let reference = try Request(serializedBytes: body)
            let decoded = try Self.fast([UInt8](body))
            #expect(decoded == reference)
            for resourceSpans in reference.resourceSpans {
                #expect(ResourceSpansEncoder.encode(resourceSpans) == (try resourceSpans.serializedBytes() as [UInt8]))
            }
        }
    }

    /// Keys MLflow sends on every span are decoded to shared strings: equal to SwiftProtobuf's, and keys that differ
    /// from one of them by a byte or a length (or are not valid UTF-8) decoded, or declined, as any other key.
    @Test func knownAttributeKeysDecodeAsSwiftProtobufDecodesThem() throws {
        var keys = ["mlflow.spanType", "mlflow.traceRequestId", "service.name", "telemetry.sdk.version", "gen_ai.system"]
        keys += ["mlflow.spanTypf", "mlflow.spanTyp", "mlflow.spanTypee", "Service.name", "", "x", "mlflow.spänType"]
        for key in keys {
            let request = Request.with {
                $0.resourceSpans = [
                    .with {
                        $0.resource.attributes = [.with { $0.key = key }]
                        $0.scopeSpans = [
                            .with {
                                $0.spans = [
                                    .with {
                                        $0.traceID = Data(repeating: 1, count: 16)
                                        $0.spanID = Data(repeating: 2, count: 8)
                                        $0.attributes = [
                                            .with {
                                                $0.key = key; $0.value.stringValue = "v"
                                            }
                                        ]
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
            let bytes = try request.serializedBytes() as [UInt8]
            let fast = try Self.fast(bytes)
            #expect(fast == request, "\(key)")
            #expect(fast.resourceSpans.first?.scopeSpans.first?.spans.first?.attributes.first?.key == key)
        }
        var invalid =
            try Request.with {
                $0.resourceSpans = [.with { $0.resource.attributes = [.with { $0.key = "mlflow.spanType" }] }]
            }.serializedBytes() as [UInt8]
        let position = try #require(invalid.indices.first { invalid[$0...].starts(with: Array("spanType".utf8)) })
        invalid[position] = 0xFF
        #expect(throws: NotOnFastPath.self) { try Self.fast(invalid) }
    }

    @Test func randomMessagesRoundTripByteForByte() throws {
        var random = SeededRandom(seed: 20_261_203)
        for _ in 0..<300 {
            let request = RandomMessages.request(&random)
            let reference: [UInt8] = try request.serializedBytes()
            let decoded = try Self.fast(reference)
            #expect(decoded == (try Request(serializedBytes: reference)))
            for resourceSpans in request.resourceSpans {
                #expect(ResourceSpansEncoder.encode(resourceSpans) == (try resourceSpans.serializedBytes() as [UInt8]))
            }
        }
    }

    @Test func damagedBytesGetSwiftProtobufsAnswer() throws {
        var random = SeededRandom(seed: 7)
        var declined = 0
        for round in 0..<1500 {
            var bytes: [UInt8] = try RandomMessages.request(&random).serializedBytes()
            guard !bytes.isEmpty else { continue }
            switch round % 3 {
            case 0: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            case 1: bytes.removeLast(Int(random.next() % UInt64(min(bytes.count, 9))) + 1)
            default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: Int(random.next() % UInt64(bytes.count)))
            }
            let reference = Result { try Request(serializedBytes: bytes) }
            let ours = Result { try Self.decode(bytes) }
            switch (reference, ours) {
            case (.success(let expected), .success(let actual)):
                // Compared as bytes: a damaged double can be a NaN, which is not equal to itself.
                #expect(try actual.serializedBytes() as [UInt8] == (try expected.serializedBytes() as [UInt8]))
                // What SwiftProtobuf kept (unknown fields, merged values) is written back as SwiftProtobuf writes it.
                for resourceSpans in expected.resourceSpans {
                    #expect(ResourceSpansEncoder.encode(resourceSpans) == (try resourceSpans.serializedBytes() as [UInt8]))
                }
            case (.failure, .failure): break
            default: Issue.record("round \(round): SwiftProtobuf \(reference), the decoder \(ours)")
            }
            if (try? Self.fast(bytes)) == nil { declined += 1 }
        }
        // The damage must have exercised the fallback, or this test shows nothing about it.
        #expect(declined > 300)
    }

    @Test func unknownFieldsAreKeptBySwiftProtobufAndWrittenBack() throws {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = Data(repeating: 1, count: 16)
        span.spanID = Data(repeating: 2, count: 8)
        span.name = "with a future field"
        var spanBytes: [UInt8] = try span.serializedBytes()
        spanBytes += [0xA8, 0x06, 0x2A]  // field 101, varint 42: unknown to this schema
        var scopeBytes: [UInt8] = [0x12, UInt8(spanBytes.count)] + spanBytes
        scopeBytes = [0x12, UInt8(scopeBytes.count)] + scopeBytes
        let request: [UInt8] = [0x0A, UInt8(scopeBytes.count)] + scopeBytes
        #expect(throws: NotOnFastPath.self) { try Self.fast(request) }
        let decoded = try Self.decode(request)
        #expect(decoded == (try Request(serializedBytes: request)))
        let resourceSpans = try #require(decoded.resourceSpans.first)
        #expect(!resourceSpans.scopeSpans[0].spans[0].unknownFields.data.isEmpty)
        #expect(ResourceSpansEncoder.encode(resourceSpans) == (try resourceSpans.serializedBytes() as [UInt8]))
    }

    @Test func aStatusSentTwiceIsMergedAsProtobufMergesIt() throws {
        var first = Opentelemetry_Proto_Trace_V1_Status()
        first.message = "first"
        var second = Opentelemetry_Proto_Trace_V1_Status()
        second.code = .error
        let firstBytes: [UInt8] = try first.serializedBytes()
        let secondBytes: [UInt8] = try second.serializedBytes()
        // Field 15 (status), length-delimited, twice.
        let statusBytes: [UInt8] = [0x7A, UInt8(firstBytes.count)] + firstBytes + [0x7A, UInt8(secondBytes.count)] + secondBytes
        let scope: [UInt8] = [0x12, UInt8(statusBytes.count)] + statusBytes
        let resource: [UInt8] = [0x12, UInt8(scope.count)] + scope
        let request: [UInt8] = [0x0A, UInt8(resource.count)] + resource
        let decoded = try Self.decode(request)
        let status = try #require(decoded.resourceSpans.first?.scopeSpans.first?.spans.first?.status)
        #expect(status.message == "first" && status.code == .error)
    }

    /// An attribute whose value comes twice (two lists, which protobuf merges into one) and a value with two members
    /// of its oneof (the last wins) are left to SwiftProtobuf, and decode as it decodes them.
    @Test func aValueSentTwiceAndTwoMembersAreLeftToSwiftProtobuf() throws {
        func list(_ key: String) throws -> [UInt8] {
            var value = Opentelemetry_Proto_Common_V1_AnyValue()
            value.kvlistValue.values = [
                .with {
                    $0.key = key; $0.value.stringValue = key
                }
            ]
            return try value.serializedBytes()
        }
        let first = try list("a")
        let second = try list("b")
        let key: [UInt8] = [0x0A, 0x01, UInt8(ascii: "k")]
        let twice: [UInt8] = key + [0x12, UInt8(first.count)] + first + [0x12, UInt8(second.count)] + second
        // A value whose oneof holds a string, then an int (field 3, varint 7).
        let members: [UInt8] = [0x0A, 0x01, UInt8(ascii: "s"), 0x18, 0x07]
        let both: [UInt8] = key + [0x12, UInt8(members.count)] + members
        for keyValue in [twice, both] {
            let attribute: [UInt8] = [0x4A, UInt8(keyValue.count)] + keyValue  // span field 9
            let scope: [UInt8] = [0x12, UInt8(attribute.count)] + attribute
            let resource: [UInt8] = [0x12, UInt8(scope.count)] + scope
            let request: [UInt8] = [0x0A, UInt8(resource.count)] + resource
            #expect(throws: NotOnFastPath.self) { try Self.fast(request) }
            #expect(try Self.decode(request) == (try Request(serializedBytes: request)))
        }
        let merged = try Self.decode(
            [0x0A, UInt8(twice.count + 6), 0x12, UInt8(twice.count + 4), 0x12, UInt8(twice.count + 2), 0x4A, UInt8(twice.count)] + twice)
        #expect(merged.resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.kvlistValue.values.map(\.key) == ["a", "b"])
    }

    @Test func invalidUTF8IsRejectedAsSwiftProtobufRejectsIt() throws {
        let name: [UInt8] = [0x2A, 0x02, 0xC3, 0x28]  // field 5 (name), an invalid two-byte sequence
        let scope: [UInt8] = [0x12, UInt8(name.count)] + name
        let resource: [UInt8] = [0x12, UInt8(scope.count)] + scope
        let request: [UInt8] = [0x0A, UInt8(resource.count)] + resource
        #expect(throws: (any Error).self) { try Self.decode(request) }
        #expect(throws: (any Error).self) { try Request(serializedBytes: request) }
    }

    @Test func itemsAppendedToARequestAreTheRequestSwiftProtobufEncodes() throws {
        var random = SeededRandom(seed: 5)
        for _ in 0..<50 {
            let request = RandomMessages.request(&random)
            var framed: [UInt8] = [0xFF]  // bytes already in the buffer stay as they are
            for item in request.resourceSpans {
                let before = framed.count
                let appended = ResourceSpansEncoder.append(item, asRequestFieldTo: &framed)
                #expect(appended == framed.count - before)
            }
            #expect(framed == [0xFF] + (try request.serializedBytes() as [UInt8]))
        }
    }

    @Test func entityReferencesAreWrittenAsSwiftProtobufWritesThem() throws {
        var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resourceSpans.resource.entityRefs = [
            .with {
                $0.type = "service"
                $0.idKeys = ["service.name", "service.namespace"]
                $0.descriptionKeys = ["service.version"]
            }
        ]
        resourceSpans.scopeSpans = [.with { $0.spans = [.with { $0.name = "s" }] }]
        #expect(ResourceSpansEncoder.encode(resourceSpans) == (try resourceSpans.serializedBytes() as [UInt8]))
        // The decoder leaves them to SwiftProtobuf, which keeps them.
        var request = Request()
        request.resourceSpans = [resourceSpans]
        let bytes: [UInt8] = try request.serializedBytes()
        #expect(throws: NotOnFastPath.self) { try Self.fast(bytes) }
        #expect(try Self.decode(bytes) == request)
    }

    @Test func longNestedMessagesGetMultiByteLengths() throws {
        var keyValue = Opentelemetry_Proto_Common_V1_KeyValue()
        keyValue.key = "mlflow.spanInputs"
        keyValue.value.stringValue = String(repeating: "é", count: 40_000)  // 80,000 bytes: a three-byte length
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.attributes = [keyValue]
        var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resourceSpans.scopeSpans = [.with { $0.spans = [span] }]
        let encoded = ResourceSpansEncoder.encode(resourceSpans)
        #expect(encoded == (try resourceSpans.serializedBytes() as [UInt8]))
        var request = Request()
        request.resourceSpans = [resourceSpans]
        #expect(try Self.fast(try request.serializedBytes()) == request)
    }
}

/// A small deterministic generator (SplitMix64), so a failing case can be reproduced from its seed.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

/// Random OTLP trace messages: every field of every message the codec writes, defaults and extremes included.
enum RandomMessages {
    typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
    typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue

    static let texts = ["", "a", "mlflow.spanInputs", "gen_ai.request.model", "é ü 日本語 🚀", String(repeating: "x", count: 200)]

    static func text(_ random: inout SeededRandom) -> String { texts[random.below(texts.count)] }

    static func bytes(_ random: inout SeededRandom, _ count: Int) -> Data {
        Data((0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) })
    }

    static func request(_ random: inout SeededRandom) -> OTLPBinaryTests.Request {
        var request = OTLPBinaryTests.Request()
        for _ in 0..<random.below(3) {
            var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            if random.chance(80) {
                resourceSpans.resource.attributes = attributes(&random, depth: 0)
                if random.chance(20) { resourceSpans.resource.droppedAttributesCount = UInt32(random.below(5)) }
            }
            for _ in 0..<random.below(3) {
                var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
                if random.chance(70) {
                    scopeSpans.scope.name = text(&random)
                    scopeSpans.scope.version = text(&random)
                    if random.chance(30) { scopeSpans.scope.attributes = attributes(&random, depth: 1) }
                    if random.chance(10) { scopeSpans.scope.droppedAttributesCount = UInt32.max }
                }
                scopeSpans.spans = (0..<random.below(4)).map { _ in span(&random) }
                if random.chance(20) { scopeSpans.schemaURL = "https://opentelemetry.io/schemas/1.37.0" }
                resourceSpans.scopeSpans.append(scopeSpans)
            }
            if random.chance(20) { resourceSpans.schemaURL = text(&random) }
            request.resourceSpans.append(resourceSpans)
        }
        return request
    }

    static func span(_ random: inout SeededRandom) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = bytes(&random, random.chance(90) ? 16 : random.below(20))
        span.spanID = bytes(&random, 8)
        if random.chance(50) { span.parentSpanID = bytes(&random, 8) }
        if random.chance(20) { span.traceState = "vendor=value" }
        span.name = text(&random)
        span.kind = Opentelemetry_Proto_Trace_V1_Span.SpanKind(rawValue: [0, 1, 2, 3, 4, 5, 9, -3][random.below(8)]) ?? .unspecified
        span.startTimeUnixNano = random.chance(90) ? random.next() : 0
        span.endTimeUnixNano = random.next()
        span.attributes = attributes(&random, depth: 0)
        if random.chance(20) { span.droppedAttributesCount = UInt32(truncatingIfNeeded: random.next()) }
        for _ in 0..<random.below(3) {
            var event = Opentelemetry_Proto_Trace_V1_Span.Event()
            event.timeUnixNano = random.next()
            event.name = text(&random)
            event.attributes = attributes(&random, depth: 1)
            if random.chance(20) { event.droppedAttributesCount = 3 }
            span.events.append(event)
        }
        if random.chance(20) { span.droppedEventsCount = 1 }
        for _ in 0..<random.below(2) {
            var link = Opentelemetry_Proto_Trace_V1_Span.Link()
            link.traceID = bytes(&random, 16)
            link.spanID = bytes(&random, 8)
            if random.chance(30) { link.traceState = "k=v" }
            link.attributes = attributes(&random, depth: 1)
            if random.chance(30) { link.droppedAttributesCount = 2 }
            if random.chance(50) { link.flags = UInt32(truncatingIfNeeded: random.next()) }
            span.links.append(link)
        }
        if random.chance(20) { span.droppedLinksCount = 4 }
        if random.chance(70) {
            span.status.code = Opentelemetry_Proto_Trace_V1_Status.StatusCode(rawValue: [0, 1, 2, 7][random.below(4)]) ?? .unset
            if random.chance(50) { span.status.message = text(&random) }
        }
        if random.chance(50) { span.flags = UInt32(truncatingIfNeeded: random.next()) }
        return span
    }

    static func attributes(_ random: inout SeededRandom, depth: Int) -> [KeyValue] {
        (0..<random.below(depth > 2 ? 2 : 6)).map { _ in
            var keyValue = KeyValue()
            keyValue.key = text(&random)
            if random.chance(95) { keyValue.value = value(&random, depth: depth) }
            return keyValue
        }
    }

    static func value(_ random: inout SeededRandom, depth: Int) -> AnyValue {
        var value = AnyValue()
        switch random.below(depth > 2 ? 6 : 8) {
        case 0: value.stringValue = text(&random)
        case 1: value.boolValue = random.chance(50)
        case 2: value.intValue = [0, 1, -1, Int64.max, Int64.min, 300][random.below(6)]
        case 3: value.doubleValue = [0.0, -0.0, 0.2, -1e300, .infinity, 5e-324][random.below(6)]
        case 4: value.bytesValue = bytes(&random, random.below(20))
        case 5: break  // an AnyValue with nothing set
        case 6: value.arrayValue.values = (0..<random.below(4)).map { _ in self.value(&random, depth: depth + 1) }
        default: value.kvlistValue.values = attributes(&random, depth: depth + 1)
        }
        return value
    }
}

@Suite struct OTLPBinaryDepthTests {
    /// A request whose one attribute nests `levels` key-value lists, written as bytes directly (building it as
    /// messages would recurse as deep as the test means to go).
    static func nested(_ levels: Int) -> [UInt8] {
        func field(_ number: UInt8, _ body: [UInt8]) -> [UInt8] {
            var length: [UInt8] = []
            var value = body.count
            while value >= 0x80 {
                length.append(UInt8(value & 0x7F) | 0x80)
                value >>= 7
            }
            length.append(UInt8(value))
            return [number << 3 | 2] + length + body
        }
        var value = field(1, Array("leaf".utf8))  // AnyValue { string_value }
        for _ in 0..<levels {
            let entry = field(1, Array("k".utf8)) + field(2, value)  // KeyValue { key, value }
            value = field(6, field(1, entry))  // AnyValue { kvlist_value { values } }
        }
        let attribute = field(1, Array("deep".utf8)) + field(2, value)
        return field(1, field(2, field(2, field(9, attribute))))  // request → resource spans → scope spans → span
    }

    @Test func deepValuesAreLeftToSwiftProtobufsRecursionLimit() throws {
        let moderate = Self.nested(25)
        #expect(throws: NotOnFastPath.self) { try OTLPBinaryTests.fast(moderate) }
        #expect(try OTLPBinaryTests.decode(moderate) == (try OTLPBinaryTests.Request(serializedBytes: moderate)))
        // Deeper than SwiftProtobuf's limit of 100 messages: rejected, not a stack overflow.
        let hostile = Self.nested(5_000)
        #expect(throws: (any Error).self) { try OTLPBinaryTests.decode(hostile) }
    }
}

/// Structured span attributes written as JSON straight from the bytes: the same strings the translator makes of
/// the typed values (`PythonStyleJSON`), on captures, random messages and damaged bytes.
@Suite struct StructuredValueJSONTests {
    typealias Request = OTLPBinaryTests.Request

    /// `request` with every span attribute that is a key-value list or an array replaced by its JSON text, as the
    /// translator's normalizer replaces it.
    static func normalized(_ request: Request) -> Request {
        var request = request
        for r in request.resourceSpans.indices {
            for s in request.resourceSpans[r].scopeSpans.indices {
                for p in request.resourceSpans[r].scopeSpans[s].spans.indices {
                    request.resourceSpans[r].scopeSpans[s].spans[p].attributes = request.resourceSpans[r].scopeSpans[s].spans[p].attributes.map {
                        var attribute = $0
                        switch attribute.value.value {
                        case .kvlistValue?, .arrayValue?: attribute.value.stringValue = PythonStyleJSON.encode(attribute.value)
                        default: break
                        }
                        return attribute
                    }
                }
            }
        }
        return request
    }

    static func fastJSON(_ bytes: [UInt8]) throws -> Request {
        try bytes.withUnsafeBytes { raw in try TraceRequestDecoder.decodeFast(raw, structuredSpanAttributesAsJSON: true) }
    }

    @Test func capturedAndRandomUploadsGetTheTranslatorsStrings() throws {
        var bodies = try OTLPBinaryTests.capturedUploads().map { [UInt8]($0) }
        var random = SeededRandom(seed: 99)
        for _ in 0..<300 { bodies.append(try RandomMessages.request(&random).serializedBytes()) }
        var structured = 0
        for body in bodies {
            let reference = try Request(serializedBytes: body)
            let decoded = try Self.fastJSON(body)
            #expect(decoded == Self.normalized(reference))
            structured +=
                reference.resourceSpans.flatMap(\.scopeSpans).flatMap(\.spans).flatMap(\.attributes).filter {
                    if case .kvlistValue? = $0.value.value { return true }
                    if case .arrayValue? = $0.value.value { return true }
                    return false
                }.count
            // Only span attributes change: the resource's, events' and links' stay typed, as the translator leaves them.
            #expect(decoded.resourceSpans.map(\.resource) == reference.resourceSpans.map(\.resource))
        }
        #expect(structured > 100)
    }

    @Test func damagedBytesEndInTheSameTranslation() throws {
        var random = SeededRandom(seed: 11)
        for round in 0..<1500 {
            var bytes: [UInt8] = try RandomMessages.request(&random).serializedBytes()
            guard !bytes.isEmpty else { continue }
            bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            let reference = Result { try Request(serializedBytes: bytes) }
            let ours = Result { try bytes.withUnsafeBytes { try TraceRequestDecoder.decode($0, structuredSpanAttributesAsJSON: true) } }
            switch (reference, ours) {
            case (.success(let expected), .success(let actual)):
                // Compared as bytes: a damaged double can be a NaN, which is not equal to itself.
                #expect(try Self.normalized(actual).serializedBytes() as [UInt8] == (try Self.normalized(expected).serializedBytes() as [UInt8]))
            case (.failure, .failure): break
            default: Issue.record("round \(round): SwiftProtobuf \(reference), the decoder \(ours)")
            }
        }
    }

    @Test func aDoubleAndBytesInsideAListAreWrittenAsPythonWritesThem() throws {
        var list = Opentelemetry_Proto_Common_V1_AnyValue()
        list.kvlistValue.values = [
            .with {
                $0.key = "t"; $0.value.doubleValue = 0.2
            },
            .with {
                $0.key = "n"; $0.value.doubleValue = 5
            },
            .with {
                $0.key = "b"; $0.value.bytesValue = Data([1, 2, 3])
            }, .with { $0.key = "none" },
            .with {
                $0.key = "q\"uote"; $0.value.arrayValue.values = [.with { $0.boolValue = false }, .init()]
            },
        ]
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.attributes = [
            .with {
                $0.key = "mlflow.spanInputs"; $0.value = list
            }
        ]
        var request = Request()
        request.resourceSpans = [.with { $0.scopeSpans = [.with { $0.spans = [span] }] }]
        let decoded = try Self.fastJSON(try request.serializedBytes())
        let text = decoded.resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.stringValue
        #expect(text == #"{"t": 0.2, "n": 5.0, "b": "AQID", "none": null, "q\"uote": [false, null]}"#)
    }
}
