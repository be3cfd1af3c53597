// swift-tools-version:6.2
import PackageDescription

// The cheapest relays Swift NIO can make, measured by the passthrough benchmark in the proxy's place
// (Tests/benchmarks/passthrough/floor.sh): not part of the product. It shows what any passthrough built on NIO costs
// before it does anything the proxy must do.
let package = Package(
    name: "nio-floor",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")
    ],
    targets: [
        .target(
            name: "FloorRelay",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(name: "nio-floor-bytes", dependencies: ["FloorRelay"]),
        .executableTarget(name: "nio-floor-http", dependencies: ["FloorRelay"]),
    ]
)
