import Testing

@testable import AdminSite

/// The status page's HTML escaping works on Unicode scalars: a prepend or combining scalar that forms one grapheme
/// cluster with `<`, `>` or a quote must not hide it from the escaper.
struct StatusPageEscapingTests {
    @Test(arguments: [
        ("<script>", "&lt;script&gt;"),
        ("\u{0600}<img src=x>", "\u{0600}&lt;img src=x&gt;"),
        ("<\u{0301}img>", "&lt;\u{0301}img&gt;"),
        ("a\">\u{0301}", "a&quot;&gt;\u{0301}"),
        ("'\u{200D}&", "&#39;\u{200D}&amp;"),
        ("plain text é 日本", "plain text é 日本"),
    ])
    func markupIsEscapedWhateverItIsGluedTo(input: String, expected: String) {
        let escaped = StatusPage.escape(input)
        #expect(escaped == expected)
        #expect(!escaped.unicodeScalars.contains { "<>\"'".unicodeScalars.contains($0) })
    }
}
