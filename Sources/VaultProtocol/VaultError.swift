/// A stable error code: the JSON-RPC `code` and the string `data.code` that goes with it.
///
/// New codes can be added without breaking callers: compare with the static members, and treat
/// an unknown code (from a newer daemon) by its `rpcCode`.
public struct VaultErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The JSON-RPC error code, e.g. -32004.
    public let rpcCode: Int
    /// The stable string in `data.code`, e.g. `NOT_FOUND`.
    public let name: String

    public init(rpcCode: Int, name: String) {
        self.rpcCode = rpcCode
        self.name = name
    }

    public var description: String { name }

    public static let parseError = VaultErrorCode(rpcCode: -32700, name: "PARSE_ERROR")
    public static let invalidRequest = VaultErrorCode(rpcCode: -32600, name: "INVALID_REQUEST")
    public static let methodNotFound = VaultErrorCode(rpcCode: -32601, name: "METHOD_NOT_FOUND")
    public static let badRequest = VaultErrorCode(rpcCode: -32602, name: "BAD_REQUEST")
    public static let unauthorized = VaultErrorCode(rpcCode: -32001, name: "UNAUTHORIZED")
    public static let forbidden = VaultErrorCode(rpcCode: -32003, name: "FORBIDDEN")
    public static let notFound = VaultErrorCode(rpcCode: -32004, name: "NOT_FOUND")
    public static let payloadTooLarge = VaultErrorCode(rpcCode: -32013, name: "PAYLOAD_TOO_LARGE")
    public static let rateLimited = VaultErrorCode(rpcCode: -32029, name: "RATE_LIMITED")
    public static let unavailable = VaultErrorCode(rpcCode: -32050, name: "UNAVAILABLE")
    public static let internalError = VaultErrorCode(rpcCode: -32603, name: "INTERNAL_ERROR")
}

/// An error as the daemon reports it: a code, a human message that never contains a secret, and
/// optional details. Thrown by the daemon's handlers and by the client library.
public struct VaultError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: VaultErrorCode
    /// A human-readable message. Never contains a token, key or other secret.
    public var message: String
    /// For exchange failures: why the grant token was refused (`expired`, `scope`, ...).
    public var reason: String?
    /// For `RATE_LIMITED`: how long to wait before the next attempt.
    public var retryAfterMs: Int?
    /// The daemon's id for the request, also written to its log line (set on errors read from the wire).
    public var requestId: String?

    public init(_ code: VaultErrorCode, _ message: String, reason: String? = nil, retryAfterMs: Int? = nil, requestId: String? = nil) {
        self.code = code
        self.message = message
        self.reason = reason
        self.retryAfterMs = retryAfterMs
        self.requestId = requestId
    }

    public var description: String { "\(message) (\(code.name))" }

    public static func badRequest(_ message: String) -> VaultError { VaultError(.badRequest, message) }
    public static func notFound(_ message: String = "Credential not found") -> VaultError { VaultError(.notFound, message) }
    public static func tooLarge(_ message: String) -> VaultError { VaultError(.payloadTooLarge, message) }
    public static func unavailable(_ message: String) -> VaultError { VaultError(.unavailable, message) }
    public static func `internal`(_ message: String = "Internal error") -> VaultError { VaultError(.internalError, message) }
}
