/// Typed access to the members of a JSON object, with errors that name the member but never echo
/// its value (values may be secrets).
///
/// The daemon reads request params with `.params` (bad input is `BAD_REQUEST`); clients read
/// results with `.reply` (a malformed reply is `INTERNAL_ERROR`).
public struct FieldReader: Sendable {
    public enum Role: Sendable {
        case params
        case reply
    }

    public let object: JSONObject
    private let role: Role

    /// Reads `object` as request params, refusing members not in `allowed` with `BAD_REQUEST`.
    public init(params object: JSONObject?, allowed: Set<String>) throws(VaultError) {
        self.object = object ?? JSONObject()
        self.role = .params
        for key in self.object.keys where !allowed.contains(key) {
            let known = allowed.isEmpty ? "this method takes no parameters" : "allowed: " + allowed.sorted().joined(separator: ", ")
            throw VaultError(.badRequest, "Unknown parameter \(Self.quotedIfSafe(key))(\(known))")
        }
    }

    /// Client input is echoed in an error only when it looks like a parameter name: letters only, at
    /// most 32. Anything else might be a token pasted in the wrong place.
    static func quotedIfSafe(_ name: String) -> String {
        guard (1...32).contains(name.utf8.count), name.utf8.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
            return ""
        }
        return "'\(name)' "
    }

    /// Reads `object` as a reply from the daemon.
    public init(reply value: JSONValue) throws(VaultError) {
        guard case .object(let object) = value else {
            throw VaultError(.internalError, "The daemon sent a result that is not an object")
        }
        self.object = object
        self.role = .reply
    }

    private func fail(_ message: String) -> VaultError {
        switch role {
        case .params: return VaultError(.badRequest, message)
        case .reply: return VaultError(.internalError, "The daemon sent a malformed result: \(message)")
        }
    }

    private var noun: String { role == .params ? "parameter" : "field" }

    /// A required string member.
    public func string(_ name: String) throws(VaultError) -> String {
        guard let value = object[name], !value.isNull else { throw fail("Missing required \(noun) '\(name)'") }
        guard case .string(let string) = value else { throw fail("\(noun.capitalizedFirst) '\(name)' must be a string") }
        return string
    }

    /// An optional string member; `null` counts as absent.
    public func optionalString(_ name: String) throws(VaultError) -> String? {
        guard let value = object[name], !value.isNull else { return nil }
        guard case .string(let string) = value else { throw fail("\(noun.capitalizedFirst) '\(name)' must be a string") }
        return string
    }

    /// An optional integer member; `null` counts as absent.
    public func optionalInt(_ name: String) throws(VaultError) -> Int? {
        guard let value = object[name], !value.isNull else { return nil }
        guard case .number = value else { throw fail("\(noun.capitalizedFirst) '\(name)' must be an integer") }
        guard let int = value.int64Value, let result = Int(exactly: int) else {
            throw fail("\(noun.capitalizedFirst) '\(name)' must be an integer")
        }
        return result
    }

    /// A required boolean member.
    public func bool(_ name: String) throws(VaultError) -> Bool {
        guard case .bool(let flag)? = object[name] else { throw fail("\(noun.capitalizedFirst) '\(name)' must be a boolean") }
        return flag
    }

    /// An optional object member; `null` counts as absent.
    public func optionalObject(_ name: String) throws(VaultError) -> JSONObject? {
        guard let value = object[name], !value.isNull else { return nil }
        guard case .object(let member) = value else { throw fail("\(noun.capitalizedFirst) '\(name)' must be a JSON object") }
        return member
    }

    /// A required array member.
    public func array(_ name: String) throws(VaultError) -> [JSONValue] {
        guard case .array(let elements)? = object[name] else { throw fail("\(noun.capitalizedFirst) '\(name)' must be an array") }
        return elements
    }
}

extension String {
    fileprivate var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}
