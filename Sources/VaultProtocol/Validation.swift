/// The validation rules of PROTOCOL.md's data model. Each returns the normalised value or throws
/// `BAD_REQUEST` (shape, pattern or length of identifiers) or `PAYLOAD_TOO_LARGE` (a token or
/// metadata over its byte limit). Messages name the parameter, never its value.
public enum Validation {
    /// Checks `^[a-z0-9][a-z0-9._-]{0,63}$` case-insensitively and returns the name in lower case.
    ///
    /// Only ASCII is folded: Unicode case folding maps some non-ASCII letters (the Kelvin sign) to
    /// ASCII ones, which would let two different strings name one service.
    public static func service(_ raw: String, parameter: String = "service") throws(VaultError) -> String {
        let bytes = Array(raw.utf8)
        guard Limits.serviceLength.contains(bytes.count) else {
            throw .badRequest("Parameter '\(parameter)' must be 1-64 characters matching [a-z0-9][a-z0-9._-]*")
        }
        var lowered = [UInt8]()
        lowered.reserveCapacity(bytes.count)
        for (position, byte) in bytes.enumerated() {
            let lower = (0x41...0x5A).contains(byte) ? byte + 0x20 : byte
            let alnum = (0x61...0x7A).contains(lower) || (0x30...0x39).contains(lower)
            let punct = lower == UInt8(ascii: ".") || lower == UInt8(ascii: "_") || lower == UInt8(ascii: "-")
            guard alnum || (position > 0 && punct) else {
                throw .badRequest("Parameter '\(parameter)' must match [a-z0-9][a-z0-9._-]{0,63} (case-insensitive)")
            }
            lowered.append(lower)
        }
        return String(decoding: lowered, as: UTF8.self)
    }

    /// 1-256 Unicode scalars, no control characters (they would corrupt tables and logs).
    public static func principalId(_ raw: String, parameter: String = "principalId") throws(VaultError) -> String {
        try text(raw, parameter: parameter, length: Limits.principalIdLength)
    }

    /// 1-64 Unicode scalars, no control characters.
    public static func credentialType(_ raw: String) throws(VaultError) -> String {
        try text(raw, parameter: "credentialType", length: Limits.credentialTypeLength)
    }

    private static func text(_ raw: String, parameter: String, length: ClosedRange<Int>) throws(VaultError) -> String {
        let count = raw.unicodeScalars.count
        guard length.contains(count) else {
            throw .badRequest("Parameter '\(parameter)' must be \(length.lowerBound)-\(length.upperBound) characters")
        }
        if raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw .badRequest("Parameter '\(parameter)' must not contain control characters")
        }
        return raw
    }

    /// A token: 1-16,384 bytes of UTF-8.
    public static func token(_ raw: String, parameter: String) throws(VaultError) -> String {
        let count = raw.utf8.count
        if count == 0 { throw .badRequest("Parameter '\(parameter)' must not be empty") }
        if count > Limits.tokenBytes.upperBound {
            throw .tooLarge("Parameter '\(parameter)' is larger than \(Limits.tokenBytes.upperBound) bytes")
        }
        return raw
    }

    /// Metadata: an object of at most 16 KiB once serialised.
    public static func metadata(_ object: JSONObject) throws(VaultError) -> JSONObject {
        if object.jsonBytes.count > Limits.maxMetadataBytes {
            throw .tooLarge("Parameter 'metadata' is larger than \(Limits.maxMetadataBytes) bytes once serialised")
        }
        return object
    }

    /// An RFC 3339 timestamp.
    public static func timestamp(_ raw: String, parameter: String) throws(VaultError) -> Timestamp {
        guard let timestamp = Timestamp(rfc3339: raw) else {
            throw .badRequest("Parameter '\(parameter)' must be an RFC 3339 timestamp such as 2026-11-29T12:16:43.373Z")
        }
        return timestamp
    }
}
