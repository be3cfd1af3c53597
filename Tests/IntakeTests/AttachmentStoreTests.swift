import Foundation
import Hummingbird
import Logging
import NIOCore
import ProxyObservability
import Testing

@testable import Intake

/// The attachment budget counts files and directories, not only bytes.
struct AttachmentStoreTests {
    @Test func emptyAttachmentsUseTheBudgetToo() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attachments-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        // Room for one trace directory and three files.
        let store = try AttachmentStore(
            directory: directory.path, maxBytes: 4 * AttachmentStore.entryCost, counters: ProxyCounters())
        var stored = 0
        for index in 0..<10 {
            let kept = try await store.receive(
                RequestBody(buffer: ByteBuffer()), traceID: "tr-1", attachmentID: "a\(index)", declaredLength: 0, logger: Logger(label: "test"))
            if kept { stored += 1 }
        }
        #expect(stored == 3)
        // A new store over the same directory counts what is there the same way: nothing more fits.
        let reopened = try AttachmentStore(
            directory: directory.path, maxBytes: 4 * AttachmentStore.entryCost, counters: ProxyCounters())
        let kept = try await reopened.receive(
            RequestBody(buffer: ByteBuffer()), traceID: "tr-1", attachmentID: "another", declaredLength: 0, logger: Logger(label: "test"))
        #expect(!kept)
    }
}
