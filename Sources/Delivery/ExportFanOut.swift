import Logging
import NIOConcurrencyHelpers
import OTLPExport
import OTLPProto
import ServiceLifecycle
import SharedSettings

/// The destinations traces are exported to right now: one unit (export pipeline plus the gRPC connection it
/// may need) per destination, every trace to each. Units can be added and retired while the proxy runs
/// (configuration reload): a retired unit stops taking spans and flushes its queue before it ends, so no
/// queued span is dropped; an unchanged destination keeps its unit and its queue.
public final class ExportFanOut: Service, Sendable {
    /// One destination's export: its pipeline and the services it runs in (gRPC connection first).
    public struct Unit: Sendable {
        /// What makes two units interchangeable: the same destination settings and the same delivery.
        let key: Key
        let pipeline: ExportPipeline
        let group: ServiceGroup
    }

    /// The settings a unit was built from.
    public struct Key: Equatable, Sendable {
        var destination: OTLPDestination?
        var delivery: DeliverySettings
        var localFile: String?

        /// Whether both keys name the same destination (by its configured name, or the same local file).
        func sameDestination(as other: Key) -> Bool {
            if let name = destination?.name { return name == other.destination?.name }
            return localFile != nil && localFile == other.localFile
        }
    }

    private let units: NIOLockedValueBox<[Unit]>
    private let started: (stream: AsyncStream<Unit>, continuation: AsyncStream<Unit>.Continuation)

    /// A fan-out over `units`, each started when the fan-out runs.
    public init(units: [Unit]) {
        self.units = NIOLockedValueBox(units)
        started = AsyncStream.makeStream()
        for unit in units { started.continuation.yield(unit) }
    }

    /// The pipelines exporting now.
    public var pipelines: [ExportPipeline] { units.withLockedValue { $0.map(\.pipeline) } }

    /// The keys of the units exporting now.
    public var keys: [Key] { units.withLockedValue { $0.map(\.key) } }

    /// Hands translated spans to every destination's queue.
    public func submit(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        for pipeline in pipelines { pipeline.submit(resourceSpans) }
    }

    /// Returns once every pipeline sealed into its spool what it was given before the call.
    public func sealSubmitted() async {
        for pipeline in pipelines { await pipeline.sealSubmitted() }
    }

    /// Whether every pipeline sealed everything into its spool and stopped taking more; false without pipelines.
    public var hasSpooledEverything: Bool {
        let pipelines = self.pipelines
        return !pipelines.isEmpty && pipelines.allSatisfy(\.hasSpooledEverything)
    }

    /// Why a destination's spool cannot be written now (one line per destination), empty when all can.
    public var spoolProblems: [String] { pipelines.compactMap(\.spoolProblem) }

    /// Whether a destination whose full policy is `refuse` has no room: clients are then asked to retry.
    public var isSaturated: Bool {
        pipelines.contains { $0.fullPolicy == .refuse && $0.isSaturated }
    }

    /// Makes `replacement` the set of units: units whose key is in it are kept as they are (the replacement's
    /// copy is dropped unstarted), new ones start, the others are retired (they flush, then end).
    /// - Returns: how many units started and how many were retired.
    @discardableResult
    public func replace(with replacement: [Unit]) async -> (started: Int, retired: Int) {
        let (added, retired): ([Unit], [Unit]) = units.withLockedValue { current in
            let added = replacement.filter { new in !current.contains { $0.key == new.key } }
            let retired = current.filter { old in !replacement.contains { $0.key == old.key } }
            current = current.filter { old in replacement.contains { $0.key == old.key } } + added
            return (added, retired)
        }
        for unit in added { started.continuation.yield(unit) }
        for unit in retired {
            // The same destination with new settings (a rotated key, new headers): the old unit delivers nothing more
            // with its old settings and gives its queue (or spool) to the new one.
            if let successor = added.first(where: { $0.key.sameDestination(as: unit.key) }) {
                await unit.pipeline.retire(handingOverTo: successor.pipeline)
            }
            await unit.group.triggerGracefulShutdown()
        }
        return (added.count, retired.count)
    }

    /// Runs every unit until graceful shutdown, which each unit sees too: the pipelines flush, then end.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for await unit in started.stream {
                    group.addTask {
                        do {
                            try await unit.group.run()
                        } catch {
                            // A pipeline ends only by shutdown; an error here is a bug worth a line, not a crash.
                            Logger(label: "mlflow-otel-proxy").error("export unit ended with an error", metadata: ["error": "\(error)"])
                        }
                    }
                }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.started.continuation.finish()
        }
    }
}
