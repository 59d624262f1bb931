/// Params and results of the `vault.*` methods. Names mirror the Grantex SDK's `client.vault` types.
///
/// Each params type has an initialiser for clients and `init(validating:)` for the daemon, which
/// applies every rule of PROTOCOL.md and normalises (service names to lower case, timestamps to UTC
/// with milliseconds). Each result type has `json` for the daemon and `init(json:)` for clients.

/// Params of `vault.store`.
public struct StoreCredentialParams: Sendable, Equatable {
    public var principalId: String
    public var service: String
    public var accessToken: String
    /// Defaults to `oauth2` in the daemon when nil.
    public var credentialType: String?
    public var refreshToken: String?
    /// RFC 3339 timestamp of the upstream token's expiry.
    public var tokenExpiresAt: String?
    public var metadata: JSONObject?

    public init(
        principalId: String, service: String, accessToken: String, credentialType: String? = nil,
        refreshToken: String? = nil, tokenExpiresAt: String? = nil, metadata: JSONObject? = nil
    ) {
        self.principalId = principalId
        self.service = service
        self.accessToken = accessToken
        self.credentialType = credentialType
        self.refreshToken = refreshToken
        self.tokenExpiresAt = tokenExpiresAt
        self.metadata = metadata
    }

    static let allowed: Set<String> = [
        "principalId", "service", "accessToken", "credentialType", "refreshToken", "tokenExpiresAt", "metadata",
    ]

    /// Reads and validates wire params. The result has `service` in lower case, `credentialType`
    /// set, and `tokenExpiresAt` normalised.
    public init(validating params: JSONObject?) throws(VaultError) {
        let reader = try FieldReader(params: params, allowed: Self.allowed)
        self.principalId = try Validation.principalId(try reader.string("principalId"))
        self.service = try Validation.service(try reader.string("service"))
        self.accessToken = try Validation.token(try reader.string("accessToken"), parameter: "accessToken")
        self.credentialType = try Validation.credentialType(
            try reader.optionalString("credentialType") ?? Limits.defaultCredentialType)
        self.refreshToken = try reader.optionalString("refreshToken").map { (raw) throws(VaultError) in
            try Validation.token(raw, parameter: "refreshToken")
        }
        self.tokenExpiresAt = try reader.optionalString("tokenExpiresAt").map { (raw) throws(VaultError) in
            try Validation.timestamp(raw, parameter: "tokenExpiresAt").rfc3339
        }
        self.metadata = try reader.optionalObject("metadata").map { (raw) throws(VaultError) in try Validation.metadata(raw) }
        if reader.object["metadata"] != nil, reader.object["metadata"]?.isNull == false, metadata == nil {
            throw .badRequest("Parameter 'metadata' must be a JSON object")
        }
    }

    /// The wire params.
    public var json: JSONObject {
        var object: JSONObject = [
            "principalId": .string(principalId), "service": .string(service), "accessToken": .string(accessToken),
        ]
        if let credentialType { object["credentialType"] = .string(credentialType) }
        if let refreshToken { object["refreshToken"] = .string(refreshToken) }
        if let tokenExpiresAt { object["tokenExpiresAt"] = .string(tokenExpiresAt) }
        if let metadata { object["metadata"] = .object(metadata) }
        return object
    }
}

/// Result of `vault.store`.
public struct StoreCredentialResponse: Sendable, Equatable {
    public var id: String
    public var principalId: String
    public var service: String
    public var credentialType: String
    public var createdAt: String
    public var updatedAt: String
    /// True when a new credential was created, false when an existing one was replaced.
    public var created: Bool

    public init(id: String, principalId: String, service: String, credentialType: String, createdAt: String, updatedAt: String, created: Bool) {
        self.id = id
        self.principalId = principalId
        self.service = service
        self.credentialType = credentialType
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.created = created
    }

    public var json: JSONValue {
        .object([
            "id": .string(id), "principalId": .string(principalId), "service": .string(service),
            "credentialType": .string(credentialType), "createdAt": .string(createdAt),
            "updatedAt": .string(updatedAt), "created": .bool(created),
        ])
    }

    public init(json: JSONValue) throws(VaultError) {
        let r = try FieldReader(reply: json)
        self.init(
            id: try r.string("id"), principalId: try r.string("principalId"), service: try r.string("service"),
            credentialType: try r.string("credentialType"), createdAt: try r.string("createdAt"),
            updatedAt: try r.string("updatedAt"), created: try r.bool("created"))
    }
}

/// A stored credential as `vault.get` and `vault.list` show it: never the tokens themselves.
public struct VaultCredential: Sendable, Equatable {
    public var id: String
    public var principalId: String
    public var service: String
    public var credentialType: String
    public var tokenExpiresAt: String?
    public var metadata: JSONObject
    public var createdAt: String
    public var updatedAt: String
    public var hasRefreshToken: Bool

    public init(
        id: String, principalId: String, service: String, credentialType: String, tokenExpiresAt: String?,
        metadata: JSONObject, createdAt: String, updatedAt: String, hasRefreshToken: Bool
    ) {
        self.id = id
        self.principalId = principalId
        self.service = service
        self.credentialType = credentialType
        self.tokenExpiresAt = tokenExpiresAt
        self.metadata = metadata
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.hasRefreshToken = hasRefreshToken
    }

    public var json: JSONValue {
        .object([
            "id": .string(id), "principalId": .string(principalId), "service": .string(service),
            "credentialType": .string(credentialType), "tokenExpiresAt": tokenExpiresAt.map(JSONValue.string) ?? .null,
            "metadata": .object(metadata), "createdAt": .string(createdAt), "updatedAt": .string(updatedAt),
            "hasRefreshToken": .bool(hasRefreshToken),
        ])
    }

    public init(json: JSONValue) throws(VaultError) {
        let r = try FieldReader(reply: json)
        self.init(
            id: try r.string("id"), principalId: try r.string("principalId"), service: try r.string("service"),
            credentialType: try r.string("credentialType"), tokenExpiresAt: try r.optionalString("tokenExpiresAt"),
            metadata: try r.optionalObject("metadata") ?? JSONObject(), createdAt: try r.string("createdAt"),
            updatedAt: try r.string("updatedAt"), hasRefreshToken: try r.bool("hasRefreshToken"))
    }
}

/// Params of `vault.list`: optional exact filters and paging.
public struct ListVaultCredentialsParams: Sendable, Equatable {
    public var principalId: String?
    public var service: String?
    /// Page size, 1-1000; the daemon uses 100 when nil.
    public var limit: Int?
    /// The `nextCursor` of the previous page.
    public var cursor: String?

    public init(principalId: String? = nil, service: String? = nil, limit: Int? = nil, cursor: String? = nil) {
        self.principalId = principalId
        self.service = service
        self.limit = limit
        self.cursor = cursor
    }

    /// Reads and validates wire params; `service` comes back in lower case.
    public init(validating params: JSONObject?) throws(VaultError) {
        let r = try FieldReader(params: params, allowed: ["principalId", "service", "limit", "cursor"])
        self.principalId = try r.optionalString("principalId").map { (raw) throws(VaultError) in try Validation.principalId(raw) }
        self.service = try r.optionalString("service").map { (raw) throws(VaultError) in try Validation.service(raw) }
        self.limit = try r.optionalInt("limit")
        if let limit, !Limits.listLimit.contains(limit) {
            throw .badRequest("Parameter 'limit' must be an integer from 1 to 1000")
        }
        self.cursor = try r.optionalString("cursor")
    }

    public var json: JSONObject {
        var object = JSONObject()
        if let principalId { object["principalId"] = .string(principalId) }
        if let service { object["service"] = .string(service) }
        if let limit { object["limit"] = .int(limit) }
        if let cursor { object["cursor"] = .string(cursor) }
        return object
    }
}

/// Result of `vault.list`: one page, newest first.
public struct ListVaultCredentialsResponse: Sendable, Equatable {
    public var credentials: [VaultCredential]
    /// Pass as `cursor` to get the next page; nil on the last page.
    public var nextCursor: String?

    public init(credentials: [VaultCredential], nextCursor: String?) {
        self.credentials = credentials
        self.nextCursor = nextCursor
    }

    public var json: JSONValue {
        .object(["credentials": .array(credentials.map(\.json)), "nextCursor": nextCursor.map(JSONValue.string) ?? .null])
    }

    public init(json: JSONValue) throws(VaultError) {
        let r = try FieldReader(reply: json)
        var credentials: [VaultCredential] = []
        for element in try r.array("credentials") { credentials.append(try VaultCredential(json: element)) }
        self.init(credentials: credentials, nextCursor: try r.optionalString("nextCursor"))
    }
}

/// Result of `vault.delete`.
public struct DeleteCredentialResponse: Sendable, Equatable {
    public var id: String
    public var deleted: Bool

    public init(id: String, deleted: Bool) {
        self.id = id
        self.deleted = deleted
    }

    public var json: JSONValue { .object(["id": .string(id), "deleted": .bool(deleted)]) }

    public init(json: JSONValue) throws(VaultError) {
        let r = try FieldReader(reply: json)
        self.init(id: try r.string("id"), deleted: try r.bool("deleted"))
    }
}

/// Params of `vault.exchange` besides the grant token.
public struct ExchangeCredentialParams: Sendable, Equatable {
    public var service: String

    public init(service: String) {
        self.service = service
    }
}

/// Result of `vault.exchange`: the upstream access token of the grant's principal for one service.
public struct ExchangeCredentialResponse: Sendable, Equatable {
    public var accessToken: String
    public var service: String
    public var credentialType: String
    public var tokenExpiresAt: String?
    public var metadata: JSONObject

    public init(accessToken: String, service: String, credentialType: String, tokenExpiresAt: String?, metadata: JSONObject) {
        self.accessToken = accessToken
        self.service = service
        self.credentialType = credentialType
        self.tokenExpiresAt = tokenExpiresAt
        self.metadata = metadata
    }

    public var json: JSONValue {
        .object([
            "accessToken": .string(accessToken), "service": .string(service), "credentialType": .string(credentialType),
            "tokenExpiresAt": tokenExpiresAt.map(JSONValue.string) ?? .null, "metadata": .object(metadata),
        ])
    }

    public init(json: JSONValue) throws(VaultError) {
        let r = try FieldReader(reply: json)
        self.init(
            accessToken: try r.string("accessToken"), service: try r.string("service"),
            credentialType: try r.string("credentialType"), tokenExpiresAt: try r.optionalString("tokenExpiresAt"),
            metadata: try r.optionalObject("metadata") ?? JSONObject())
    }
}
