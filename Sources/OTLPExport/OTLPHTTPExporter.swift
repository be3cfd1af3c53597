import AsyncHTTPClient
import CompressNIO
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import OTLPJSON
import OTLPProto
import ProxyObservability
import SharedSettings
import SwiftProtobuf

/// Exports OTLP over HTTP to one destination, with protobuf or JSON bodies (`http/protobuf`, `http/json`).
///
/// Retries what the OTLP specification calls retryable (HTTP 429, 502, 503, 504 and connection
/// failures) by the destination's ``RetryPolicy``, honouring `Retry-After`; every other status fails at
/// once. A partial success (`rejected_spans`) is logged and reported, not retried.
public struct OTLPHTTPExporter: SpanExporter {
    /// Logs and counters name the destination by this.
    public let name: String
    private let destination: OTLPDestination
    private let client: HTTPClient
    private let retry: RetryPolicy
    private let logger: Logger
    private let status: StatusBoard?
    private let counters: ProxyCounters?
    private let tlsConfiguration: TLSConfiguration?

    /// Creates an exporter.
    /// - Parameters:
    ///   - client: a shared client whose lifetime the caller manages.
    /// - Throws: when a TLS file (CA, certificate, key) cannot be loaded.
    public init(
        destination: OTLPDestination, client: HTTPClient, retry: RetryPolicy = RetryPolicy(), logger: Logger, status: StatusBoard? = nil,
        counters: ProxyCounters? = nil
    ) throws {
        self.name = destination.name
        self.destination = destination
        self.client = client
        self.retry = retry
        self.logger = logger
        self.status = status
        self.counters = counters
        tlsConfiguration = try Self.tlsConfiguration(destination.tls)
    }

    /// The client TLS configuration for the destination's settings, or `nil` for the defaults (system trust
    /// roots, full verification).
    public static func tlsConfiguration(_ settings: TLSSettings) throws -> TLSConfiguration? {
        guard settings.caFile != nil || settings.certFile != nil || settings.insecureSkipVerify else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = settings.caFile { tls.trustRoots = .file(caFile) }
        if let certFile = settings.certFile, let keyFile = settings.keyFile {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        if settings.insecureSkipVerify { tls.certificateVerification = .none }
        return tls
    }

    /// Sends the batch, retrying as described on the type. Protobuf batches go as they were queued (no
    /// re-encoding); JSON destinations get the OTLP/JSON form.
    public func export(_ batch: ExportBatch) async throws(ExportFailure) -> Int {
        let encoded: [UInt8]
        if destination.transportProtocol == .httpJSON {
            do {
                encoded = Array(try OTLPJSONCoding.encode(try batch.request()))
            } catch let failure as ExportFailure {
                throw failure
            } catch {
                throw ExportFailure(reason: .encoding, message: "could not encode the export request as OTLP/JSON: \(error)")
            }
        } else {
            encoded = batch.bytes
        }
        return try await post(ByteBuffer(bytes: encoded))
    }

    /// Sends any OTLP export request (traces or metrics) to the destination's endpoint, with the same
    /// encoding, headers, TLS and retries.
    public func send(_ request: some SwiftProtobuf.Message) async throws(ExportFailure) {
        let body: ByteBuffer
        do {
            body =
                destination.transportProtocol == .httpJSON
                ? ByteBuffer(bytes: try OTLPJSONCoding.encode(request)) : ByteBuffer(bytes: try request.serializedBytes() as [UInt8])
        } catch {
            throw ExportFailure(reason: .encoding, message: "could not encode the export request: \(error)")
        }
        _ = try await post(body)
    }

    private func post(_ encoded: ByteBuffer) async throws(ExportFailure) -> Int {
        var body = encoded
        if destination.compression == .gzip {
            do {
                body = try body.compress(with: .gzip())
            } catch {
                throw ExportFailure(reason: .encoding, message: "could not gzip the export request: \(error)")
            }
        }
        let compressed = body
        return try await OTLPRetry.run(policy: retry, destination: name, logger: logger, status: status, counters: counters) {
            await attemptOnce(compressed)
        }
    }

    private func attemptOnce(_ body: ByteBuffer) async -> AttemptOutcome {
        var httpRequest = HTTPClientRequest(url: destination.endpoint.description)
        httpRequest.method = .POST
        httpRequest.headers.add(
            name: "Content-Type", value: destination.transportProtocol == .httpJSON ? "application/json" : "application/x-protobuf")
        httpRequest.tlsConfiguration = tlsConfiguration
        httpRequest.headers.add(name: "User-Agent", value: "mlflow-otel-proxy/\(ProxyVersion.current)")
        if destination.compression == .gzip { httpRequest.headers.add(name: "Content-Encoding", value: "gzip") }
        for header in destination.headers { httpRequest.headers.replaceOrAdd(name: header.key, value: header.value) }
        httpRequest.body = .bytes(body)
        let timeout = destination.timeout.map(TimeAmount.init) ?? .hours(24)
        do {
            let response = try await client.execute(httpRequest, timeout: timeout, logger: logger)
            let status = Int(response.status.code)
            let answer = try await response.body.collect(upTo: 4 * 1024 * 1024)
            if (200..<300).contains(status) {
                return .delivered(rejectedSpans: partialSuccess(answer, contentType: response.headers.first(name: "content-type")))
            }
            let failure = ExportFailure(
                reason: status >= 500 ? .http5xx : .http4xx,
                message: "\(destination.endpoint) answered \(status): \(destination.maskingCredentials(in: Self.describeErrorBody(answer)))",
                credentialsRejected: status == 401 || status == 403, httpStatus: status
            )
            switch status {
            case 429, 502, 503, 504:
                return .retryable(failure, retryAfter: Self.retryAfter(response.headers.first(name: "retry-after")))
            default:
                return .permanent(failure)
            }
        } catch let error as NIOSSLError {
            let failure = ExportFailure(
                reason: .tls, message: "TLS with \(destination.endpoint) failed: \(Self.describe(error)); check the destination's tls settings")
            // A certificate that does not verify, or a key that cannot be loaded, will not fix itself by retrying;
            // a reset or an unclean shutdown during the handshake (a network blip, a restarting load balancer) may.
            return Self.isPermanent(error) ? .permanent(failure) : .retryable(failure, retryAfter: nil)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return .retryable(ExportFailure(reason: .timeout, message: "\(destination.endpoint) did not answer in time"), retryAfter: nil)
        } catch {
            return .retryable(ExportFailure(reason: .connection, message: "\(destination.endpoint): \(error)"), retryAfter: nil)
        }
    }

    /// The spans a partial success rejected (logged with the destination's message); 0 for full success.
    private func partialSuccess(_ body: ByteBuffer, contentType: String?) -> Int {
        guard body.readableBytes > 0, contentType?.contains("protobuf") ?? true,
            let response = try? Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(serializedBytes: Array(buffer: body)),
            response.hasPartialSuccess
        else { return 0 }
        let partial = response.partialSuccess
        if partial.rejectedSpans > 0 || !partial.errorMessage.isEmpty {
            logger.warning(
                "destination accepted the export only in part",
                metadata: [
                    "destination": "\(name)", "rejected_spans": "\(partial.rejectedSpans)",
                    "message": "\(destination.maskingCredentials(in: partial.errorMessage))",
                ]
            )
        }
        return Int(clamping: max(0, partial.rejectedSpans))
    }

    /// The `Retry-After` delay (seconds form or HTTP date), if present and parseable.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSinceNow * 1000)))
    }

    /// The start of an error body, as text (decoding `google.rpc.Status` when it is protobuf).
    static func describeErrorBody(_ body: ByteBuffer) -> String {
        if let status = try? Google_Rpc_Status(serializedBytes: Array(buffer: body)), !status.message.isEmpty {
            return status.message
        }
        let text = String(buffer: body)
        return text.count > 300 ? String(text.prefix(300)) + "…" : (text.isEmpty ? "(empty body)" : text)
    }

    /// Whether a TLS failure is about certificates or keys (permanent) rather than the connection (retried).
    static func isPermanent(_ error: NIOSSLError) -> Bool {
        switch error {
        case .failedToLoadCertificate, .failedToLoadPrivateKey, .noCertificateToValidate, .unableToValidateCertificate,
            .cannotMatchULabel, .noSuchFilesystemObject:
            return true
        case .handshakeFailed:
            // BoringSSL names the reason: certificate and protocol-version problems, or bad keys, are the server's or
            // the configuration's; a syscall error or an early end of the stream is the network's.
            let text = "\(error)".uppercased()
            return ["CERTIFICATE", "VERIFY", "UNSUPPORTED_PROTOCOL", "WRONG_VERSION", "NO_SHARED_CIPHER", "ALERT_HANDSHAKE_FAILURE"]
                .contains { text.contains($0) }
        default:
            return false
        }
    }

    /// A TLS error in words (BoringSSL's reason, e.g. `CERTIFICATE_VERIFY_FAILED`, without source paths).
    static func describe(_ error: NIOSSLError) -> String {
        let text = "\(error)"
        if let range = text.range(of: #"[A-Z][A-Z_]{6,}"#, options: .regularExpression) { return "\(text[range]) (\(text.prefix { $0 != "(" }))" }
        return text
    }

    /// Nothing to release: the HTTP client belongs to the caller.
    public func shutdown() async {}
}
