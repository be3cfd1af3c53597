import MLflowWire
import OTLPProto
import OTLPTranslation
import SwiftProtobuf
import TestSupport
import Testing

struct AttributeNormalizationTests {
    typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue

    @Test func jsonTextPrimitivesBecomeTypedValues() {
        #expect(AttributeValueNormalizer.decodeJSONText("\"LLM\"").stringValue == "LLM")
        #expect(AttributeValueNormalizer.decodeJSONText("42").intValue == 42)
        #expect(AttributeValueNormalizer.decodeJSONText("-7").intValue == -7)
        #expect(AttributeValueNormalizer.decodeJSONText("3.14").doubleValue == 3.14)
        #expect(AttributeValueNormalizer.decodeJSONText("1e3").doubleValue == 1000)
        #expect(AttributeValueNormalizer.decodeJSONText("true").boolValue == true)
        #expect(AttributeValueNormalizer.decodeJSONText("null").value == nil)
        #expect(AttributeValueNormalizer.decodeJSONText("\"caf\\u00e9 \\\"q\\\"\"").stringValue == "café \"q\"")
        #expect(AttributeValueNormalizer.decodeJSONText("99999999999999999999").doubleValue == 1e20)
    }

    @Test func structuredValuesStayOneJSONStringNeverDoubleEncoded() {
        let text = #"{"question": "What is MLflow?", "history": []}"#
        #expect(AttributeValueNormalizer.decodeJSONText(text).stringValue == text)
        #expect(AttributeValueNormalizer.decodeJSONText("[1, 2, 3]").stringValue == "[1, 2, 3]")
        // Not JSON at all (an attribute some other library set raw): kept as the string it is.
        #expect(AttributeValueNormalizer.decodeJSONText("plain words").stringValue == "plain words")
    }

    @Test func typedStructuredValuesAreWrittenAsPythonWritesThem() {
        var inner = AnyValue()
        inner.kvlistValue = .with {
            $0.values = [
                .with {
                    $0.key = "a"; $0.value.intValue = 1
                },
                .with {
                    $0.key = "b"; $0.value.arrayValue = .with { $0.values = [.with { $0.boolValue = true }, AnyValue()] }
                },
                .with {
                    $0.key = "s"; $0.value.stringValue = "line\n\"q\" é"
                },
                .with {
                    $0.key = "f"; $0.value.doubleValue = 2.0
                },
            ]
        }
        let normalized = AttributeValueNormalizer.normalize(inner, encoding: .typed)
        #expect(normalized.stringValue == #"{"a": 1, "b": [true, null], "s": "line\n\"q\" é", "f": 2.0}"#)
        var primitive = AnyValue()
        primitive.intValue = 5
        #expect(AttributeValueNormalizer.normalize(primitive, encoding: .typed) == primitive)
    }

    /// A value already in normal form has no replacement (the translator then leaves its attribute uncopied);
    /// every other value's replacement is its normal form.
    @Test func onlyValuesThatChangeHaveAReplacement() {
        func value(_ build: (inout AnyValue) -> Void) -> AnyValue {
            var value = AnyValue()
            build(&value)
            return value
        }
        let unchanged: [(AnyValue, AttributeEncoding)] = [
            (value { $0.stringValue = "plain text" }, .typed), (value { $0.stringValue = #"{"a": 1}"# }, .typed),
            (value { $0.intValue = 5 }, .typed), (value { $0.boolValue = true }, .jsonText), (value { _ in }, .typed),
            (value { $0.stringValue = "not json" }, .jsonText), (value { $0.stringValue = #"{"a": 1}"# }, .jsonText),
        ]
        for (original, encoding) in unchanged {
            #expect(AttributeValueNormalizer.replacement(for: original, encoding: encoding) == nil, "\(original) \(encoding)")
            #expect(AttributeValueNormalizer.normalize(original, encoding: encoding) == original)
        }
        let changed: [(AnyValue, AttributeEncoding, AnyValue)] = [
            (value { $0.stringValue = #""LLM""# }, .jsonText, value { $0.stringValue = "LLM" }),
            (value { $0.stringValue = "42" }, .jsonText, value { $0.intValue = 42 }),
            (value { $0.stringValue = "null" }, .jsonText, value { _ in }),
            (value { $0.stringValue = #"  {"a": 1} "# }, .jsonText, value { $0.stringValue = #"{"a": 1}"# }),
            (value { $0.arrayValue.values = [value { $0.intValue = 1 }] }, .typed, value { $0.stringValue = "[1]" }),
            (value { $0.arrayValue.values = [value { $0.intValue = 1 }] }, .jsonText, value { $0.stringValue = "[1]" }),
        ]
        for (original, encoding, expected) in changed {
            #expect(AttributeValueNormalizer.replacement(for: original, encoding: encoding) == expected, "\(original) \(encoding)")
        }
    }

    /// The same spans arrive typed (`/v1/traces`) and as JSON text (`traces.json`): both must normalize
    /// to identical attributes, or the copies of a span would differ depending on which arrived first.
    @Test func bothUploadFormsOfTheSameSpanNormalizeIdentically() throws {
        let exchanges = try CaptureReplay.exchanges("02_async_default")
        var typed: [String: [Opentelemetry_Proto_Common_V1_KeyValue]] = [:]
        var text: [String: [Opentelemetry_Proto_Common_V1_KeyValue]] = [:]
        for upload in try CaptureReplay.uploads(exchanges) {
            guard case .spans(let batches) = upload else { continue }
            for batch in batches {
                for span in batch.spans {
                    let normalized = span.attributes.map { attribute in
                        var copy = attribute
                        copy.value = AttributeValueNormalizer.normalize(attribute.value, encoding: batch.encoding)
                        return copy
                    }.sorted { $0.key < $1.key }
                    if batch.encoding == .typed { typed[span.name] = normalized } else { text[span.name] = normalized }
                }
            }
        }
        #expect(typed.count == 8)
        #expect(Set(typed.keys) == Set(text.keys))
        for (name, attributes) in typed {
            #expect(attributes == text[name], "span \(name)")
        }
        let root = try #require(typed["agent_root"])
        func value(_ key: String) -> AnyValue? { root.first { $0.key == key }?.value }
        #expect(value("str_attr")?.stringValue == "hello")
        #expect(value("int_attr")?.intValue == 42)
        #expect(value("float_attr")?.doubleValue == 3.14)
        #expect(value("bool_attr")?.boolValue == true)
        #expect(value("list_attr")?.stringValue == "[1, 2, 3]")
        #expect(value("dict_attr")?.stringValue == #"{"a": 1, "b": [true, null]}"#)
        #expect(value("mlflow.spanType")?.stringValue == "CHAIN")
        #expect(value("mlflow.spanInputs")?.stringValue == #"{"question": "What is MLflow?", "history": []}"#)
        #expect(value("mlflow.traceRequestId")?.stringValue == "tr-99ccd723cc7a3d734cd93ef1590a0ed4")
    }
}
