import VaultProtocol

/// A revoked token id (`jti`) or grant id (`grnt`).
public struct Revocation: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case jti
        case grant
    }

    public var kind: Kind
    public var value: String
    public var revokedAt: Timestamp
    /// When the entry may be forgotten (the revoked tokens have expired by then); nil keeps it.
    public var expiresAt: Timestamp?

    public init(kind: Kind, value: String, revokedAt: Timestamp, expiresAt: Timestamp?) {
        self.kind = kind
        self.value = value
        self.revokedAt = revokedAt
        self.expiresAt = expiresAt
    }

    struct Key: Hashable {
        var kind: Kind
        var value: String
    }

    var key: Key { Key(kind: kind, value: value) }

    func isForgotten(at now: Timestamp) -> Bool { expiresAt.map { $0 <= now } ?? false }

    /// As `grants.listRevoked` shows it.
    public var json: JSONValue {
        var object: JSONObject = [(kind == .jti ? "jti" : "grantId"): .string(value), "revokedAt": .string(revokedAt.rfc3339)]
        if let expiresAt { object["expiresAt"] = .string(expiresAt.rfc3339) }
        return .object(object)
    }

    static let recordKind: UInt8 = 3

    var payload: [UInt8] {
        var object: JSONObject = [
            "kind": .string(kind.rawValue), "value": .string(value), "revokedAt": .int(revokedAt.millisecondsSinceEpoch),
        ]
        if let expiresAt { object["expiresAt"] = .int(expiresAt.millisecondsSinceEpoch) }
        return object.jsonBytes
    }

    init(payload: [UInt8]) throws {
        guard case .object(let o) = try JSONParser.parse(payload), let kindText = o["kind"]?.stringValue,
            let kind = Kind(rawValue: kindText), let value = o["value"]?.stringValue, let revokedAt = o["revokedAt"]?.int64Value
        else { throw CredentialRecordCodec.DecodeError() }
        self.init(
            kind: kind, value: value, revokedAt: Timestamp(millisecondsSinceEpoch: revokedAt),
            expiresAt: o["expiresAt"]?.int64Value.map(Timestamp.init(millisecondsSinceEpoch:)))
    }
}
