import Foundation
import ProxySettings
import SharedSettings
import UpstreamAccess

/// A Databricks workspace as the upstream, resolved the way MLflow's client resolves the tracking URI
/// `databricks` or `databricks://PROFILE`: the workspace host with a personal access token, or with OAuth
/// machine-to-machine credentials, from `DATABRICKS_HOST` + `DATABRICKS_TOKEN` / `DATABRICKS_CLIENT_ID` +
/// `DATABRICKS_CLIENT_SECRET`, or from a profile of `~/.databrickscfg` (`DATABRICKS_CONFIG_FILE` moves it), or from
/// the configuration file's `upstream.databricks` keys. The MLflow REST API lives at the workspace's root.
public enum DatabricksUpstream {
    /// What the upstream becomes.
    public struct Resolved: Sendable, Equatable {
        /// The workspace URL (the proxy's upstream).
        public var host: UpstreamURL
        /// `Authorization: Bearer <token>` for a personal access token; empty with OAuth.
        public var headers: [KeyValuePair]
        /// OAuth machine-to-machine credentials, when the workspace is reached with a service principal.
        public var oauth: OAuthClientCredentials?
    }

    /// Whether a tracking URI names Databricks (`databricks`, `databricks://PROFILE`), and the profile it names.
    /// - Returns: `nil` for any other URI; `.some(nil)` for `databricks` alone.
    public static func profile(inTrackingURI uri: String) -> String?? {
        let lower = uri.lowercased()
        if lower == "databricks" { return .some(nil) }
        guard lower.hasPrefix("databricks://") else { return nil }
        let profile = String(uri.dropFirst("databricks://".count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return .some(profile.isEmpty ? nil : profile)
    }

    /// Resolves a Databricks upstream.
    /// - Parameters:
    ///   - profile: the profile named in the URI or the file (`nil`: the environment's credentials, else `DEFAULT`).
    ///   - explicit: host and credential keys given directly (`upstream.databricks` in the file); they win.
    ///   - environment: the process environment.
    ///   - setting: the setting the upstream came from, for errors.
    public static func resolve(
        profile: String?, explicit: [String: String] = [:], environment: [String: String], setting: String
    ) throws(ConfigurationError) -> Resolved {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        var keys = explicit
        var source = setting
        if keys["host"] == nil {
            if profile == nil, let host = value("DATABRICKS_HOST") {
                keys["host"] = host
                keys["token"] = value("DATABRICKS_TOKEN")
                keys["client_id"] = value("DATABRICKS_CLIENT_ID")
                keys["client_secret"] = value("DATABRICKS_CLIENT_SECRET")
                source = "DATABRICKS_HOST"
            } else {
                let name = profile ?? "DEFAULT"
                let path = value("DATABRICKS_CONFIG_FILE") ?? ((value("HOME") ?? NSHomeDirectory()) + "/.databrickscfg")
                guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                    throw ConfigurationError(
                        setting: setting,
                        reason: "Databricks: no DATABRICKS_HOST is set and the profile file \(path) cannot be read "
                            + "(set DATABRICKS_HOST and DATABRICKS_TOKEN, or DATABRICKS_CONFIG_FILE)")
                }
                guard let section = parseConfigFile(text)[name] else {
                    throw ConfigurationError(setting: setting, reason: "Databricks: the profile [\(name)] is not in \(path)")
                }
                keys.merge(section) { explicitValue, _ in explicitValue }
                source = "\(path) [\(name)]"
            }
        }
        guard let hostText = keys["host"] else {
            throw ConfigurationError(setting: setting, reason: "Databricks: \(source) names no host")
        }
        let normalized = hostText.contains("://") ? hostText : "https://" + hostText
        guard let host = UpstreamURL(normalized.hasSuffix("/") ? String(normalized.dropLast()) : normalized) else {
            throw ConfigurationError(
                setting: setting, reason: UpstreamURL.rejectionReason(hostText, expected: "Databricks: expected a workspace URL as the host"))
        }
        if let token = keys["token"] {
            return Resolved(host: host, headers: [KeyValuePair("Authorization", "Bearer \(token)")], oauth: nil)
        }
        if let clientID = keys["client_id"], let secret = keys["client_secret"] {
            let credentials = OAuthClientCredentials(
                tokenURL: host.with(path: host.basePath + "/oidc/v1/token"), clientID: clientID, clientSecret: secret)
            return Resolved(host: host, headers: [], oauth: credentials)
        }
        throw ConfigurationError(
            setting: setting,
            reason: "Databricks: \(source) has a host but no credentials (a token, or client_id and client_secret for OAuth)")
    }

    /// The sections of a `.databrickscfg` (INI: `[name]`, then `key = value` lines; `#` and `;` start comments).
    /// Keys are lower-cased; values trimmed.
    public static func parseConfigFile(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                let name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if !value.isEmpty { sections[current]?[key] = value }
        }
        return sections
    }
}
