import Foundation
import HTTPListener
import JSONText
import NIOConcurrencyHelpers

/// The experiment calls a tracing client makes, answered without an upstream (standalone mode).
///
/// Ids are derived from the experiment name (FNV-1a, 18 decimal digits like MLflow's file-store ids), so
/// the same name gets the same id after a restart; `Default` is experiment `0`, as in MLflow. Experiments
/// live in memory: after a restart a client finds its name missing, creates it again, and gets the same id.
public final class StandaloneExperiments: Sendable {
    /// One experiment created without an upstream.
    public struct Experiment: Sendable {
        /// Its id (decimal, as MLflow's).
        public var id: String
        /// Its name.
        public var name: String
        /// When it was created, in milliseconds since the epoch.
        public var createdMillis: Int64
    }

    /// Experiments by id, and ids by name (so a lookup or a create by name does not scan them all).
    private struct Store {
        var byID: [String: Experiment]
        var idByName: [String: String]
    }

    private let experiments: NIOLockedValueBox<Store>

    /// The default experiment only.
    public init() {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        experiments = NIOLockedValueBox(
            Store(byID: ["0": Experiment(id: "0", name: "Default", createdMillis: now)], idByName: ["Default": "0"]))
    }

    /// The stable id for a name.
    public static func id(forName name: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash % 900_000_000_000_000_000 + 100_000_000_000_000_000)
    }

    /// The experiment named `name`.
    public func find(name: String) -> Experiment? {
        experiments.withLockedValue { store in store.idByName[name].flatMap { store.byID[$0] } }
    }

    /// The experiment with id `id`.
    public func find(id: String) -> Experiment? {
        experiments.withLockedValue { $0.byID[id] }
    }

    /// The most experiments kept (a client creating names in a loop cannot grow the proxy without bound).
    public static let maxExperiments = 10_000
    /// The longest name accepted, in UTF-8 bytes (MLflow's own column is shorter still).
    public static let maxNameBytes = 1_000

    /// Why an experiment was not created.
    public enum CreateFailure: Error {
        case exists
        case tooMany
        case nameTooLong
    }

    /// Creates the experiment.
    public func create(name: String) -> Result<Experiment, CreateFailure> {
        guard name.utf8.count <= Self.maxNameBytes else { return .failure(.nameTooLong) }
        return experiments.withLockedValue { store in
            if store.idByName[name] != nil { return .failure(.exists) }
            guard store.byID.count < Self.maxExperiments else { return .failure(.tooMany) }
            let experiment = Experiment(id: Self.id(forName: name), name: name, createdMillis: Int64(Date().timeIntervalSince1970 * 1000))
            store.byID[experiment.id] = experiment
            store.idByName[name] = experiment.id
            return .success(experiment)
        }
    }

    /// The `{"experiment": {...}}` answer body.
    public static func json(_ experiment: Experiment) -> JSONValue {
        .object([
            (
                "experiment",
                .object([
                    ("artifact_location", .string("mlflow-artifacts:/\(experiment.id)")),
                    ("creation_time", .number(String(experiment.createdMillis))), ("experiment_id", .string(experiment.id)),
                    ("last_update_time", .number(String(experiment.createdMillis))), ("lifecycle_stage", .string("active")),
                    ("name", .string(experiment.name)), ("tags", .array([])),
                ])
            )
        ])
    }
}
