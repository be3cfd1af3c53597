import Delivery
import Foundation
import HTTPListener
import OTLPExport
import ProxyObservability
import SharedSettings

/// The `/status` page: rendered on the server, readable without JavaScript, refreshing itself every 5 s.
public enum StatusPage {
    static func render(state: AdminState, tracesWaiting: Int) -> String {
        let settings = state.settings
        let (destinations, recent, spansPerSecond) = state.status.snapshot()
        let queues = Dictionary(state.fanOut.pipelines.map { ($0.name, $0.queuedSpanCount) }, uniquingKeysWith: { $1 })
        let formatter = ISO8601DateFormatter()
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
            <title>mlflow-otel-proxy status</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
            table { border-collapse: collapse; margin-bottom: 2em; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
            th { background: #f3f3f3; } .healthy { color: #11772d; font-weight: bold; } .retrying { color: #a86400; font-weight: bold; }
            .failing, .credentials_rejected { color: #b00020; font-weight: bold; } .idle { color: #666; } code { font-size: 90%; }
            </style></head><body>
            <h1>mlflow-otel-proxy</h1>
            <table>
            <tr><th>mode</th><td>\(escape(settings.mode.rawValue))</td></tr>
            <tr><th>upstream</th><td>\(escape(settings.upstream?.description ?? "none (standalone)"))</td></tr>
            <tr><th>spans per second (last minute)</th><td>\(String(format: "%.2f", spansPerSecond))</td></tr>
            <tr><th>traces waiting for their parts</th><td>\(tracesWaiting)</td></tr>
            <tr><th>up since</th><td>\(formatter.string(from: state.status.startedAt))</td></tr>
            </table>
            <h2>Destinations</h2>
            <table><tr><th>name</th><th>endpoint</th><th>state</th><th>queued spans</th><th>spans delivered</th><th>last success</th><th>last error</th></tr>

            """
        if destinations.isEmpty {
            html += "<tr><td colspan=\"7\">none configured\(settings.localTracesFile.map { " (traces go to \(escape($0)))" } ?? "")</td></tr>\n"
        }
        for destination in destinations {
            html += "<tr><td>\(escape(destination.name))</td><td><code>\(escape(destination.endpoint))</code></td>"
            html += "<td class=\"\(destination.state.rawValue)\">\(destination.state.rawValue)</td>"
            html += "<td>\(queues[destination.name] ?? 0)</td><td>\(destination.spansDelivered)</td>"
            html += "<td>\(destination.lastSuccess.map { formatter.string(from: $0) } ?? "never")</td>"
            html += "<td>\(escape(destination.lastError ?? ""))</td></tr>\n"
        }
        html += "</table>\n<h2>Recent traces</h2>\n<table><tr><th>time</th><th>trace id</th><th>name</th><th>spans</th><th>delivered to</th></tr>\n"
        if recent.isEmpty { html += "<tr><td colspan=\"5\">none yet</td></tr>\n" }
        for trace in recent {
            html += "<tr><td>\(formatter.string(from: trace.time))</td><td><code>\(escape(trace.id))</code></td><td>\(escape(trace.name))</td>"
            html +=
                "<td>\(trace.spans)</td><td>\(escape(trace.deliveredTo.isEmpty ? "pending" : trace.deliveredTo.joined(separator: ", ")))</td></tr>\n"
        }
        html += "</table>\n</body></html>\n"
        return html
    }

    /// HTML-escapes `text` one Unicode scalar at a time. Iterating `Character`s (grapheme clusters) is not safe:
    /// a prepended or combining scalar glued to `<` forms one cluster that is not equal to `"<"`, so the `<`
    /// would be written raw (`"\u{0600}<img …>"`).
    public static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&#39;".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }
}
