import VaultProtocol

/// The unique key of a credential: one principal, one service (lower case).
public struct CredentialKey: Hashable, Sendable {
    public var principalId: String
    public var service: String

    public init(principalId: String, service: String) {
        self.principalId = principalId
        self.service = service
    }
}

/// The upstream tokens of a credential, in the clear. Exists only briefly: while a store request is
/// sealed, while the log is written or compacted, and while an exchange answers.
public struct CredentialSecrets: Sendable, Equatable {
    public var accessToken: String
    public var refreshToken: String?

    public init(accessToken: String, refreshToken: String?) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
    }
}

/// A credential as the store keeps it in memory. The tokens are not here in the clear: they are
/// sealed under a key that exists only in this process's guarded memory (`sealedSecrets`), so a
/// heap dump or swapped page shows ciphertext, and are opened only to answer an exchange.
public struct StoredCredential: Sendable {
    public var id: String
    public var principalId: String
    public var service: String
    public var credentialType: String
    public var tokenExpiresAt: Timestamp?
    public var metadata: JSONObject
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    public var hasRefreshToken: Bool
    var sealedSecrets: [UInt8]

    public var key: CredentialKey { CredentialKey(principalId: principalId, service: service) }

    /// The credential as `vault.get` / `vault.list` show it.
    public var view: VaultCredential {
        VaultCredential(
            id: id, principalId: principalId, service: service, credentialType: credentialType,
            tokenExpiresAt: tokenExpiresAt?.rfc3339, metadata: metadata, createdAt: createdAt.rfc3339,
            updatedAt: updatedAt.rfc3339, hasRefreshToken: hasRefreshToken)
    }
}

/// Encoding of credentials in sealed log records (compact JSON inside the sealed plaintext).
enum CredentialRecordCodec {
    static let putKind: UInt8 = 1
    static let deleteKind: UInt8 = 2

    static func putPayload(_ credential: StoredCredential, secrets: CredentialSecrets) -> [UInt8] {
        var object: JSONObject = [
            "id": .string(credential.id),
            "principalId": .string(credential.principalId),
            "service": .string(credential.service),
            "credentialType": .string(credential.credentialType),
            "metadata": .object(credential.metadata),
            "createdAt": .int(credential.createdAt.millisecondsSinceEpoch),
            "updatedAt": .int(credential.updatedAt.millisecondsSinceEpoch),
            "accessToken": .string(secrets.accessToken),
        ]
        if let expiry = credential.tokenExpiresAt { object["tokenExpiresAt"] = .int(expiry.millisecondsSinceEpoch) }
        if let refresh = secrets.refreshToken { object["refreshToken"] = .string(refresh) }
        return object.jsonBytes
    }

    static func deletePayload(id: String) -> [UInt8] {
        JSONObject([("id", JSONValue.string(id))]).jsonBytes
    }

    struct DecodeError: Error {}

    static func decodePut(_ payload: [UInt8]) throws -> (StoredCredential, CredentialSecrets) {
        guard case .object(let o) = try JSONParser.parse(payload),
            let id = o["id"]?.stringValue, let principalId = o["principalId"]?.stringValue,
            let service = o["service"]?.stringValue, let type = o["credentialType"]?.stringValue,
            let metadata = o["metadata"]?.objectValue, let created = o["createdAt"]?.int64Value,
            let updated = o["updatedAt"]?.int64Value, let access = o["accessToken"]?.stringValue
        else { throw DecodeError() }
        let refresh = o["refreshToken"]?.stringValue
        let credential = StoredCredential(
            id: id, principalId: principalId, service: service, credentialType: type,
            tokenExpiresAt: o["tokenExpiresAt"]?.int64Value.map(Timestamp.init(millisecondsSinceEpoch:)),
            metadata: metadata, createdAt: Timestamp(millisecondsSinceEpoch: created),
            updatedAt: Timestamp(millisecondsSinceEpoch: updated), hasRefreshToken: refresh != nil, sealedSecrets: [])
        return (credential, CredentialSecrets(accessToken: access, refreshToken: refresh))
    }

    static func decodeDelete(_ payload: [UInt8]) throws -> String {
        guard case .object(let o) = try JSONParser.parse(payload), let id = o["id"]?.stringValue else { throw DecodeError() }
        return id
    }

    /// Secrets sealed in memory: `accessToken` and `refreshToken` as a JSON object.
    static func sealSecrets(_ secrets: CredentialSecrets, box: SecretBox) -> [UInt8] {
        var object: JSONObject = ["a": .string(secrets.accessToken)]
        if let refresh = secrets.refreshToken { object["r"] = .string(refresh) }
        var plaintext = object.jsonBytes
        defer { Sodium.wipe(&plaintext) }
        return box.seal(plaintext)
    }

    static func openSecrets(_ sealed: [UInt8], box: SecretBox) -> CredentialSecrets? {
        guard var plaintext = box.open(sealed) else { return nil }
        defer { Sodium.wipe(&plaintext) }
        guard case .object(let o)? = try? JSONParser.parse(plaintext), let access = o["a"]?.stringValue else { return nil }
        return CredentialSecrets(accessToken: access, refreshToken: o["r"]?.stringValue)
    }
}
