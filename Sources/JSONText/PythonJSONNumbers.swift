import Foundation

/// Numbers as Python's `json.dumps` writes them (MLflow's client writes span attributes that way), shared by
/// every writer that turns OTLP values into that JSON.
public enum PythonJSONNumbers {
    /// A double: `NaN`, `Infinity`, `-Infinity`, integral values with one decimal (`5.0`), others as Swift
    /// writes the shortest round-tripping form.
    public static func double(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number > 0 ? "Infinity" : "-Infinity" }
        if number == number.rounded(), abs(number) < 1e16 {
            // Integral and exact in an Int64: its digits and ".0", as `%.1f` writes it (without Foundation's
            // formatter); -0.0 keeps its sign, as Python's `repr` does.
            if number == 0 { return number.sign == .minus ? "-0.0" : "0.0" }
            return "\(Int64(number)).0"
        }
        return "\(number)"
    }
}
