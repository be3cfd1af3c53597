import HTTPTypes

extension HTTPFields {
    /// The value of the field `name`, as `self[name]` gives it (the values of a repeated field joined with `", "`,
    /// `"; "` for cookies), found in one pass without building a string when the field occurs once or not at all.
    ///
    /// The subscript joins through a lazy sequence even for a single value (about 3,500 instructions a read on the
    /// answer path, where a request's few fields are read several times); a repeated field still goes through it.
    public func value(of name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            guard found == nil else { return self[name] }
            found = field.value
        }
        return found
    }

    /// The values of the fields named `name`, one per field line (none when there is no such field: the subscript's
    /// lazy sequence is not made then).
    public func values(of name: HTTPField.Name) -> [String] { contains(name) ? self[values: name] : [] }
}
