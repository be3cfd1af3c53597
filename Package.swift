// swift-tools-version:6.2
import PackageDescription

/// Settings shared by every hand-written target: Swift 6 language mode with strict concurrency,
/// explicit existentials and explicit imports (the models in docs/style.md use the same).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "mlflow-otel-proxy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mlflow-otel-proxy", targets: ["MLflowOTelProxy"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    ],
    targets: [
        // Generated from the official opentelemetry-proto descriptors; committed, never edited by hand.
        // Regenerate with `Tests/scripts/generate-otlp.sh`.
        .target(
            name: "OTLPProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            // Without the run-time exclusivity checks (the compile-time ones stay). Why it is safe: the only class
            // properties in this generated code are those of the messages' private copy-on-write storage, reached
            // only through the generated accessors, each one read or one write, never two overlapping. Why it
            // matters: every field access and every storage copy of a span paid a dynamic check (`swift_beginAccess`
            // and its access-set insert); without them an ingested trace takes 3.8 % fewer instructions (BENCHMARKS.md).
            // Cross-module optimization (here and in JSONText) lets the modules that read the messages and JSON values
            // inline their small accessors instead of calling across the module boundary: 0.995x instructions per trace.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"])]
        ),
        // OTLP protobuf for the span path written by hand: an upload decoded and a batch encoded in one pass each,
        // byte for byte what SwiftProtobuf does (which takes over for anything the fast path declines).
        .target(
            name: "OTLPBinary",
            dependencies: ["OTLPProto", "JSONText", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swiftSettings
        ),
        // OTLP/JSON as the OTLP specification defines it: hex ids, integer enums, lowerCamelCase keys.
        .target(
            name: "OTLPJSON",
            dependencies: ["OTLPProto", "JSONText", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swiftSettings
        ),
        // Counters every stage increments (by name and reason), read by logs, tests and later /metrics.
        .target(
            name: "ProxyObservability",
            dependencies: [
                "JSONText",
                .product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The clock the proxy's timers read and sleep on: the continuous clock, or a manual one in tests.
        .target(name: "DeadlineClocks", swiftSettings: swiftSettings),
        // The few setting types several stages read (errors naming a setting, URLs, key/value pairs, the mode).
        .target(name: "SharedSettings", swiftSettings: swiftSettings),
        // The proxy's whole configuration as plain values (no loader, no YAML), made of the settings types each stage
        // owns (the listener's, upstream access', the destinations' transports, delivery's); ProxyConfig builds it.
        .target(name: "ProxySettings", dependencies: ["SharedSettings", "HTTPListener", "UpstreamAccess", "OTLPExport", "Delivery"], swiftSettings: swiftSettings),
        // Settings: environment variables, the configuration file and flags turned into one validated value (pure).
        .target(
            name: "ProxyConfig",
            dependencies: ["ProxySettings", "SharedSettings", "SpanShaping", "HTTPListener", "UpstreamAccess", "OTLPExport", "Delivery", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // JSON values that keep member order and number text: parse, edit, write (pure, no dependencies). Cross-module
        // optimization: see OTLPProto.
        .target(name: "JSONText", swiftSettings: swiftSettings + [.unsafeFlags(["-cross-module-optimization"])]),
        // Wire decoding: what MLflow clients send (OTLP protobuf/JSON, TraceInfo V3, traces.json) (pure).
        .target(
            name: "MLflowWire",
            dependencies: [
                "OTLPProto", "OTLPBinary", "OTLPJSON", "JSONText",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Trace assembly: spans and trace info from any upload path, per trace, exactly once.
        .target(
            name: "TraceAssembly",
            dependencies: ["DeadlineClocks", 
                "MLflowWire", "OTLPProto", "OTLPJSON",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Translation: an assembled MLflow trace into clean OTLP (pure, no I/O).
        .target(
            name: "OTLPTranslation",
            dependencies: [
                "MLflowWire", "TraceAssembly", "OTLPProto", "JSONText",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // The stage between assembly and delivery: released traces through a bounded buffer, translated off the
        // upload's answer, handed on.
        .target(
            name: "TranslationStage",
            dependencies: [
                "TraceAssembly", "OTLPTranslation", "OTLPProto",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Span metrics: MLflow's span-duration histogram and the GenAI client histograms, aggregated from
        // translated spans into OTLP metrics (pure, no I/O).
        .target(
            name: "SpanMetrics",
            dependencies: [
                "OTLPProto", "JSONText", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The system SQLite, for the intake journal (WAL mode). Linked by the runtime library's own name, so that
        // the Swift toolchain's dependencies (libsqlite3-0) are enough to build; see Sources/CSQLite/shim.h.
        .systemLibrary(name: "CSQLite"),
        // The queue of sealed batches each destination has: in memory or in a spool directory on disk; the
        // intake journal of acknowledged uploads.
        .target(
            name: "ExportQueue",
            dependencies: [
                "CSQLite",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings,
            linkerSettings: [.linkedLibrary(":libsqlite3.so.0", .when(platforms: [.linux]))]
        ),
        // Per-destination data policy: GenAI / OpenInference conventions, redaction, size limits, routing.
        .target(
            name: "SpanShaping",
            dependencies: [
                "OTLPProto", "JSONText",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // Export: batching off the request path, OTLP/HTTP transport, the local JSON-lines sink.
        .target(
            name: "OTLPExport",
            dependencies: ["DeadlineClocks", 
                "OTLPProto", "OTLPBinary", "OTLPJSON", "SharedSettings", "ProxyObservability", "ExportQueue", "SpanShaping",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Access to the upstream MLflow server: OAuth client-credentials tokens (a Databricks service principal).
        .target(
            name: "UpstreamAccess",
            dependencies: [
                "SharedSettings", "JSONText",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Backfill: traces already stored in MLflow, read with MLflow's REST API, decoded into what the live path
        // assembles, translated, shaped and delivered to the destinations, with a checkpoint of what was delivered.
        .target(
            name: "Backfill",
            dependencies: [
                "SharedSettings", "MLflowWire", "TraceAssembly", "OTLPTranslation", "SpanShaping", "OTLPExport",
                "OTLPProto", "JSONText", "UpstreamAccess",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // Delivery: per destination, the export pipeline (shaping, batching, the queue or spool, delivery with
        // retries) and the fan-out that hands every translated trace to each destination's pipeline.
        .target(
            name: "Delivery",
            dependencies: ["DeadlineClocks", 
                "OTLPProto", "SharedSettings", "ProxyObservability", "ExportQueue", "SpanShaping", "OTLPExport", "OTLPJSON",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The guarded HTTP/1 listener every request arrives through: connection limits and deadlines, TLS, the
        // memory budget of request bodies, the request context, the checks every request passes (path, loop,
        // inbound token) and the error answers in MLflow's and OTLP's formats.
        .target(
            name: "HTTPListener",
            dependencies: [
                "SharedSettings", "ProxyObservability", "OTLPProto", "JSONText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // The passthrough: a request forwarded to the upstream MLflow server, its body streamed both ways.
        .target(
            name: "Passthrough",
            dependencies: [
                "HTTPListener", "SharedSettings", "ProxyObservability", "UpstreamAccess",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Trace intake: the trace API's routes, their bodies decoded and handed to the assembler, the answers
        // MLflow's clients expect, attachments, standalone experiments, and the journal of acknowledged uploads.
        .target(
            name: "Intake",
            dependencies: [
                "HTTPListener", "MLflowWire", "TraceAssembly", "ExportQueue", "ProxyObservability", "OTLPProto", "OTLPJSON", "JSONText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The admin listener: health, readiness, Prometheus metrics and the status page.
        .target(
            name: "AdminSite",
            dependencies: [
                "HTTPListener", "Delivery", "OTLPExport", "TraceAssembly", "SharedSettings", "ProxyObservability", "JSONText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The wiring: the services built from a configuration in start order, the request router that joins the
        // passthrough and the intake by export mode, the stage after the assembler, and configuration reload.
        .target(
            name: "ProxyServer",
            dependencies: [
                "ProxySettings", "SharedSettings", "ProxyObservability", "MLflowWire", "TraceAssembly", "OTLPTranslation", "SpanMetrics", "OTLPExport",
                "OTLPProto", "ExportQueue", "SpanShaping", "UpstreamAccess", "HTTPListener", "Passthrough", "Intake", "Delivery",
                "AdminSite", "TranslationStage", "OTLPJSON", "JSONText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings,
            // Release links (the Dockerfile's and CI's build): lld with packed relative relocations (DT_RELR) keeps the
            // position-independent executable (ASLR) while its relocation table shrinks from megabytes to kilobytes,
            // and the symbol table is not exported (nothing loads plugins or looks symbols up at run time). Together
            // they keep ~6 MiB of the binary from being paged in at start-up (BENCHMARKS.md, idle RSS). The functions
            // start-up runs are placed first and together (`startup-functions.txt`, written by
            // Tests/scripts/startup-order.sh; names the link does not find are skipped): built with function sections
            // (Tests/scripts/build-release.sh, which the Dockerfile runs), start-up then maps about 8 MB less of it.
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/MLflowOTelProxy/startup-functions.txt",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ],
                    .when(platforms: [.linux], configuration: .release))
            ]
        ),
        .executableTarget(
            name: "MLflowOTelProxy",
            dependencies: ["Delivery", 
                "ProxyConfig", "ProxySettings", "SharedSettings", "ProxyServer", "ProxyObservability", "OTLPExport", "Backfill", "OTLPTranslation", "SpanShaping", "UpstreamAccess",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            exclude: ["startup-functions.txt"],
            swiftSettings: swiftSettings,
            // Release builds (the Dockerfile's and CI's) allocate with jemalloc (Debian's libjemalloc2): against glibc's
            // malloc it takes about a tenth less CPU per ingested trace (BENCHMARKS.md), where the event loops
            // allocate what the concurrency pool's threads free. Linked as a shared library ahead of the C library,
            // its malloc is every caller's in the process (the static Swift runtime, glibc itself, zlib, SQLite), as
            // glibc provides for replacing malloc. (As an archive it would not be: the static standard library links
            // with `--exclude-libs ALL`, which keeps an archive's malloc from being exported.)
            linkerSettings: [
                .linkedLibrary(":libjemalloc.so.2", .when(platforms: [.linux], configuration: .release))
            ]
        ),
        // Shared by the test targets: the captured MLflow exchanges (../shared/fixtures/mlflow) and their replay.
        .target(
            name: "TestSupport",
            dependencies: ["DeadlineClocks", 
                "MLflowWire", "TraceAssembly", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        // One test target per module: Tests/<Module>Tests.
        unitTests("OTLPProtoTests", ["OTLPProto", "TestSupport", .product(name: "GRPCCore", package: "grpc-swift-2")]),
        unitTests("OTLPJSONTests", ["OTLPJSON", "OTLPProto"]),
        unitTests("OTLPBinaryTests", ["OTLPBinary", "OTLPProto", "OTLPTranslation", "TestSupport"]),
        unitTests("ProxyObservabilityTests", ["ProxyObservability"]),
        unitTests("ProxySettingsTests", ["ProxySettings", "SharedSettings", "Delivery", "OTLPExport"]),
        unitTests("SharedSettingsTests", ["SharedSettings"]),
        unitTests("DeadlineClocksTests", ["DeadlineClocks", "TestSupport"]),
        unitTests("ProxyConfigTests", ["Delivery", "OTLPExport", "ProxyConfig", "ProxySettings", "SharedSettings", "SpanShaping", "HTTPListener", "UpstreamAccess", .product(name: "Yams", package: "Yams")]),
        unitTests("JSONTextTests", ["JSONText", "MLflowWire"]),
        unitTests("MLflowWireTests", ["MLflowWire", "JSONText", "OTLPJSON", "OTLPProto", "TestSupport", .product(name: "CompressNIO", package: "compress-nio")]),
        unitTests(
            "TraceAssemblyTests",
            ["DeadlineClocks", "TraceAssembly", "MLflowWire", "OTLPJSON", "OTLPProto", "TestSupport", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        unitTests("OTLPTranslationTests", ["OTLPTranslation", "TraceAssembly", "MLflowWire", "OTLPJSON", "OTLPProto", "TestSupport"]),
        unitTests(
            "TranslationStageTests",
            [
                "TranslationStage", "TraceAssembly", "OTLPTranslation", "OTLPProto", "MLflowWire", "TestSupport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        unitTests("SpanMetricsTests", ["OTLPExport", "SpanMetrics", "OTLPTranslation", "TraceAssembly", "MLflowWire", "OTLPProto", "ProxyConfig", "ProxySettings", "SharedSettings", "TestSupport"]),
        unitTests("ExportQueueTests", ["ExportQueue", "OTLPProto"]),
        unitTests("SpanShapingTests", ["OTLPExport", "SpanShaping", "OTLPProto", "ProxyConfig", "ProxySettings", "SharedSettings", "JSONText"]),
        unitTests(
            "OTLPExportTests",
            ["DeadlineClocks", 
                "OTLPExport", "OTLPProto", "ProxyConfig", "ProxySettings", "SharedSettings", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        unitTests(
            "UpstreamAccessTests",
            [
                "UpstreamAccess", "ProxyConfig", "ProxySettings", "SharedSettings", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        unitTests(
            "DeliveryTests",
            ["DeadlineClocks", 
                "Delivery", "OTLPExport", "OTLPProto", "ProxySettings", "SharedSettings", "ProxyObservability", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        unitTests(
            "HTTPListenerTests",
            [
                "HTTPListener", "OTLPProto", "ProxyObservability", "TestSupport", .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"), .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"), .product(name: "NIOCore", package: "swift-nio"),
            ]),
        unitTests(
            "PassthroughTests",
            [
                "Passthrough", "TestSupport", "HTTPListener", "ProxySettings", "SharedSettings", "ProxyObservability", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ]),
        unitTests(
            "IntakeTests",
            [
                "Intake", "HTTPListener", "TraceAssembly", "MLflowWire", "ProxyObservability", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        unitTests("AdminSiteTests", ["AdminSite"]),
        unitTests(
            "ProxyServerTests",
            [
                "ProxyServer", "ProxyConfig", "ProxySettings", "SharedSettings", "ProxyObservability", "TestSupport", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOHTTP1", package: "swift-nio"),
                "HTTPListener", "Intake", .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ]),
        unitTests("MLflowOTelProxyTests", ["MLflowOTelProxy", "ProxyConfig", "ProxySettings", "SharedSettings", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(
            name: "BackfillTests",
            dependencies: [
                "Backfill", "MLflowWire", "TraceAssembly", "OTLPTranslation", "OTLPProto", "JSONText",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// One module's unit tests (`Tests/<name>`) with what every test target uses: SwiftProtobuf, NIOCore, Logging.
func unitTests(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .testTarget(
        name: name,
        dependencies: dependencies + [
            .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: swiftSettings
    )
}

// libFuzzer targets for every decoder (Tests/scripts/fuzz.sh). Declared only when that script asks, because
// they link only with `-sanitize=fuzzer`.
if Context.environment["MLFLOW_OTEL_PROXY_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "ProxyFuzz",
            dependencies: [
                "MLflowWire", "TraceAssembly", "OTLPTranslation", "ProxyConfig", "ProxySettings", "SpanShaping", "OTLPProto", "JSONText",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/fuzz/ProxyFuzz",
            swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
        )
    )
}
