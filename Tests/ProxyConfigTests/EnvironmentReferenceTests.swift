import Foundation
import ProxyConfig
import ProxySettings
import SharedSettings
import Testing

/// The one table of environment variables (`EnvironmentReference`) against what reads them and what documents
/// them: every variable the configuration code reads is in it, `--help` prints all of it, and the README's table
/// is its Markdown (`UPDATE_README=1 swift test --filter EnvironmentReference` rewrites the README's table).
struct EnvironmentReferenceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func sources() throws -> String {
        let directory = root.appendingPathComponent("Sources")
        var text = ""
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift", !file.path.contains("/OTLPProto/"), file.lastPathComponent != "EnvironmentReference.swift" else {
                continue
            }
            text += try String(contentsOf: file, encoding: .utf8)
        }
        return text
    }

    static func matches(_ pattern: String, in text: String) throws -> [String] {
        let expression = try NSRegularExpression(pattern: pattern)
        return expression.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    @Test func everyVariableTheCodeReadsIsInTheTable() throws {
        let text = try Self.sources()
        var read = Set(try Self.matches(#""((?:OTEL|MLFLOW|DATABRICKS)_[A-Z0-9_]*[A-Z0-9])""#, in: text))
        // The OTLP exporter variables are composed: OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]<suffix>.
        let suffixes = Set(try Self.matches(#"variable\("([A-Z_]+)"\)"#, in: text)).union(["ENDPOINT"])
        #expect(suffixes.count >= 8)
        for suffix in suffixes {
            read.insert("OTEL_EXPORTER_OTLP_\(suffix)")
            for signal in ["TRACES", "METRICS"] { read.insert("OTEL_EXPORTER_OTLP_\(signal)_\(suffix)") }
        }
        read.remove("OTEL_EXPORTER_OTLP_HEADERS_")  // not a variable: a prefix in a message
        read.remove("MLFLOW_EXPERIMENT")  // not a variable: the trace location type in MLflow's search API
        let missing = read.subtracting(EnvironmentReference.allNames).sorted()
        #expect(missing.isEmpty, "read by the code, missing from EnvironmentReference.variables: \(missing)")
        #expect(read.count > 60)
    }

    @Test func helpListsEveryVariable() {
        let help = EnvironmentReference.helpText()
        for name in EnvironmentReference.allNames { #expect(help.contains("  \(name)\n"), "--help lacks \(name)") }
        #expect(!help.contains("`"))
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= 78 || !$0.dropFirst(6).contains(" ") })
    }

    @Test func theReadmeTableIsTheTable() throws {
        let readme = Self.root.appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let startMarker =
            "<!-- environment table: generated from EnvironmentReference.variables (Sources/ProxyConfig), checked by the unit tests -->\n"
        let endMarker = "<!-- end of environment table -->"
        let start = try #require(text.range(of: startMarker))
        let end = try #require(text.range(of: endMarker, range: start.upperBound..<text.endIndex))
        let current = String(text[start.upperBound..<end.lowerBound])
        let expected = EnvironmentReference.markdownTable
        if current != expected, ProcessInfo.processInfo.environment["UPDATE_README"] == "1" {
            try (text[..<start.upperBound] + expected + text[end.lowerBound...]).write(to: readme, atomically: true, encoding: .utf8)
            return
        }
        #expect(current == expected, "the README's variable table differs from EnvironmentReference.variables; run UPDATE_README=1 swift test")
    }
}
