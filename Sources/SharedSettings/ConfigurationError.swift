/// Settings that stop start-up: every problem found, each naming the variable, flag or configuration key
/// path at fault and saying why. Messages never include a secret.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One bad setting.
    public struct Problem: Sendable, Equatable {
        /// The variable, flag or key path, e.g. `OTEL_EXPORTER_OTLP_PROTOCOL` or `destinations.dd.site`.
        public var setting: String
        /// Why it was rejected.
        public var reason: String
        /// A problem with `setting`.
        public init(setting: String, reason: String) {
            self.setting = setting
            self.reason = reason
        }
    }

    /// Every problem, in the order found.
    public var problems: [Problem]

    /// One problem.
    public init(setting: String, reason: String) { problems = [Problem(setting: setting, reason: reason)] }
    /// Several problems.
    public init(problems: [Problem]) { self.problems = problems }

    /// The first problem's setting.
    public var setting: String { problems.first?.setting ?? "" }
    /// The first problem's reason.
    public var reason: String { problems.first?.reason ?? "" }
    /// `SETTING: reason`, one line per problem.
    public var description: String { problems.map { "\($0.setting): \($0.reason)" }.joined(separator: "\n") }
}
