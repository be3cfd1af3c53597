import FloorRelay

try await runFloor(.bytes)
