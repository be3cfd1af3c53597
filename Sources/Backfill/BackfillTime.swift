import Foundation

/// Reads `--since` / `--until`: an ISO-8601 instant (`2026-11-30T12:00:00Z`, with or without fractional seconds, an
/// offset instead of `Z`, or a date alone, `2026-11-30`, meaning its midnight UTC), or a time before `now`
/// (`90s`, `30m`, `24h`, `7d`, `2w`). Pure.
public enum BackfillTime {
    /// The instant `text` names, or `nil` when it is neither form.
    public static func parse(_ text: String, now: Date) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let unit = trimmed.last, let amount = Double(trimmed.dropLast()), amount >= 0, amount.isFinite {
            let seconds: Double? =
                switch unit {
                case "s": 1
                case "m": 60
                case "h": 3600
                case "d": 86_400
                case "w": 604_800
                default: nil
                }
            if let seconds { return now.addingTimeInterval(-amount * seconds) }
        }
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = withFraction.date(from: trimmed) { return date }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: trimmed) { return date }
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        return day.date(from: trimmed)
    }
}
