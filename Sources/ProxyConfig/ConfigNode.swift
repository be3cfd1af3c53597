import Foundation
import ProxySettings
import SharedSettings
import Yams

/// A parsed YAML document as the configuration loader walks it: scalars stay text (no implicit typing), and
/// every node knows its path (`destinations.dd.site`) and line for error messages.
indirect enum ConfigNode {
    case scalar(String, path: String, line: Int)
    case map([(key: String, value: ConfigNode)], path: String, line: Int)
    case list([ConfigNode], path: String, line: Int)
    case null(path: String, line: Int)

    /// Parses YAML text; a syntax error names the line.
    static func parse(_ text: String) throws(ConfigurationError) -> ConfigNode {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(setting: "config file", reason: "not valid YAML: \(error)")
        } catch {
            throw ConfigurationError(setting: "config file", reason: "not valid YAML: \(error)")
        }
        guard let node else { return .map([], path: "", line: 1) }
        return convert(node, path: "")
    }

    private static func convert(_ node: Node, path: String) -> ConfigNode {
        let line = (node.mark?.line ?? 0) + 1
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string) { return .null(path: path, line: line) }
            return .scalar(scalar.string, path: path, line: line)
        case .mapping(let mapping):
            var entries: [(key: String, value: ConfigNode)] = []
            for (key, value) in mapping {
                let name = key.string ?? "?"
                entries.append((name, convert(value, path: path.isEmpty ? name : "\(path).\(name)")))
            }
            return .map(entries, path: path, line: line)
        case .sequence(let sequence):
            return .list(sequence.enumerated().map { convert($0.element, path: "\(path)[\($0.offset)]") }, path: path, line: line)
        case .alias:
            return .null(path: path, line: line)
        }
    }

    var path: String {
        switch self {
        case .scalar(_, let path, _), .map(_, let path, _), .list(_, let path, _), .null(let path, _): path
        }
    }

    var kindName: String {
        switch self {
        case .scalar: "a value"
        case .map: "a mapping"
        case .list: "a list"
        case .null: "empty"
        }
    }
}

/// Collects every problem of a configuration file, each named by its key path.
struct ConfigProblems {
    var errors: [ConfigurationError] = []

    mutating func add(_ node: ConfigNode, _ reason: String) {
        errors.append(ConfigurationError(setting: node.path, reason: reason))
    }

    mutating func add(path: String, _ reason: String) {
        errors.append(ConfigurationError(setting: path, reason: reason))
    }

    /// The entries of a mapping, reporting keys outside `allowed`.
    mutating func entries(_ node: ConfigNode, allowed: [String]) -> [String: ConfigNode] {
        guard case .map(let entries, _, _) = node else {
            if case .null = node { return [:] }
            add(node, "expected a mapping, found \(node.kindName)")
            return [:]
        }
        var result: [String: ConfigNode] = [:]
        for entry in entries {
            if !allowed.contains(entry.key) {
                add(entry.value, "unknown key, expected one of \(allowed.joined(separator: ", "))")
            } else {
                result[entry.key] = entry.value
            }
        }
        return result
    }

    /// A scalar's text, with `${env:NAME}`, `${NAME}` and `${file:/path}` references replaced.
    /// - Parameter secret: a secret must not resolve to an empty value.
    mutating func string(_ node: ConfigNode?, env: [String: String], secret: Bool = false) -> String? {
        guard let node else { return nil }
        switch node {
        case .null: return nil
        case .scalar(let text, _, _):
            guard let resolved = resolveReferences(text, node: node, env: env) else { return nil }
            if secret && resolved.isEmpty {
                add(node, "is empty; a secret must have a value")
                return nil
            }
            return resolved
        default:
            add(node, "expected a value, found \(node.kindName)")
            return nil
        }
    }

    /// A string → string mapping (headers), with references resolved; values are treated as secrets.
    mutating func stringMap(_ node: ConfigNode?, env: [String: String]) -> [KeyValuePair] {
        guard let node else { return [] }
        guard case .map(let entries, _, _) = node else {
            if case .null = node { return [] }
            add(node, "expected a mapping of names to values, found \(node.kindName)")
            return []
        }
        return entries.compactMap { entry in string(entry.value, env: env, secret: true).map { KeyValuePair(entry.key, $0) } }
    }

    /// A list of values.
    mutating func stringList(_ node: ConfigNode?, env: [String: String]) -> [String]? {
        guard let node else { return nil }
        guard case .list(let items, _, _) = node else {
            add(node, "expected a list, found \(node.kindName)")
            return nil
        }
        return items.compactMap { string($0, env: env) }
    }

    mutating func bool(_ node: ConfigNode?, env: [String: String]) -> Bool? {
        guard let text = string(node, env: env), let node else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            add(node, "expected true or false, got \"\(text)\"")
            return nil
        }
    }

    mutating func positiveInt(_ node: ConfigNode?, env: [String: String]) -> Int? {
        guard let text = string(node, env: env), let node else { return nil }
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value > 0 else {
            add(node, "expected a positive whole number, got \"\(text)\"")
            return nil
        }
        return value
    }

    /// A whole number, zero allowed (`0` usually means "off").
    mutating func nonNegativeInt(_ node: ConfigNode?, env: [String: String]) -> Int? {
        guard let text = string(node, env: env), let node else { return nil }
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value >= 0 else {
            add(node, "expected a whole number (0 or more), got \"\(text)\"")
            return nil
        }
        return value
    }

    /// A finite number (`1.5`).
    mutating func number(_ node: ConfigNode?, env: [String: String]) -> Double? {
        guard let text = string(node, env: env), let node else { return nil }
        guard let value = Double(text), value.isFinite else {
            add(node, "expected a number, got \"\(text)\"")
            return nil
        }
        return value
    }

    /// A duration: `500ms`, `10s`, `2m`, `1h`, or a number of seconds.
    mutating func duration(_ node: ConfigNode?, env: [String: String]) -> Duration? {
        guard let text = string(node, env: env), let node else { return nil }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let number = Double(text.dropLast(suffix.count)), let duration = Duration.checkedSeconds(number * factor) { return duration }
        }
        if let seconds = Double(text), let duration = Duration.checkedSeconds(seconds) { return duration }
        add(node, "expected a duration such as 500ms, 10s or 2m (at most \(Int(Duration.maximumSeconds)) s), got \"\(text)\"")
        return nil
    }

    /// One of `options`.
    mutating func choice(_ node: ConfigNode?, env: [String: String], options: [String]) -> String? {
        guard let text = string(node, env: env), let node else { return nil }
        guard options.contains(text) else {
            add(node, "unknown value \"\(text)\", expected one of \(options.joined(separator: ", "))")
            return nil
        }
        return text
    }

    /// Replaces `${env:NAME}`, `${NAME}`, `${env:NAME:-default}` and `${file:/path}`; `$$` stands for a literal `$`.
    private mutating func resolveReferences(_ text: String, node: ConfigNode, env: [String: String]) -> String? {
        guard text.contains("$") else { return text }
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let afterDollar = rest[rest.index(after: dollar)...]
            if afterDollar.hasPrefix("$") {
                result += "$"
                rest = afterDollar.dropFirst()
                continue
            }
            guard afterDollar.hasPrefix("{"), let close = afterDollar.firstIndex(of: "}") else {
                result += "$"
                rest = afterDollar
                continue
            }
            let reference = afterDollar[afterDollar.index(after: afterDollar.startIndex)..<close]
            rest = afterDollar[afterDollar.index(after: close)...]
            if reference.hasPrefix("file:") {
                let path = String(reference.dropFirst(5))
                guard let data = FileManager.default.contents(atPath: path), let content = String(data: data, encoding: .utf8) else {
                    add(node, "cannot read the secret file \(path)")
                    return nil
                }
                let trimmed = content.trimmingWhitespace()
                if trimmed.isEmpty {
                    add(node, "the secret file \(path) is empty")
                    return nil
                }
                result += trimmed
            } else {
                // `${env:NAME:-default}` (the Collector's form, as in a shell): the default when NAME is unset or empty.
                var name = reference.hasPrefix("env:") ? reference.dropFirst(4) : reference
                var fallback: Substring?
                if let separator = name.firstRange(of: ":-") {
                    fallback = name[separator.upperBound...]
                    name = name[..<separator.lowerBound]
                }
                if let value = env[String(name)], !value.isEmpty {
                    result += value
                } else if let fallback {
                    result += fallback
                } else {
                    add(node, "the environment variable \(name) is not set (referenced as ${\(reference)})")
                    return nil
                }
            }
        }
        result += rest
        return result
    }
}

extension Duration {
    /// The longest duration a setting may have, in seconds (about 31 years): anything longer is a mistake, and
    /// it keeps the conversion to whole milliseconds far from overflowing.
    static let maximumSeconds: Double = 1e9

    /// `seconds` as a duration, if it is a finite number from 0 to ``maximumSeconds``; `nil` otherwise (a
    /// fuzzed configuration with `idle_timeout: 1e100` or `inf` used to trap in the conversion).
    static func checkedSeconds(_ seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0, seconds <= maximumSeconds else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }
}
