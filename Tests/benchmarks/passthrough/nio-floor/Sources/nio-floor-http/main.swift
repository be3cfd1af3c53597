import FloorRelay

try await runFloor(.http)
