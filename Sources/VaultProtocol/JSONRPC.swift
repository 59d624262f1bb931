/// JSON-RPC 2.0 envelopes (https://www.jsonrpc.org/specification) as PROTOCOL.md narrows them.

/// One request or notification, checked for shape but not yet for its params.
public struct RPCRequest: Sendable {
    /// The request id (string, number or null); nil for a notification, which is never answered.
    public var id: JSONValue?
    public var method: String
    /// The by-name params; nil when the request had none.
    public var params: JSONObject?

    public var isNotification: Bool { id == nil }

    public init(id: JSONValue?, method: String, params: JSONObject?) {
        self.id = id
        self.method = method
        self.params = params
    }

    /// Checks that `value` is a JSON-RPC 2.0 request object.
    ///
    /// On failure returns the id to answer with (the request's own id when it had a valid one,
    /// else null) and the error. Members other than `jsonrpc`, `id`, `method` and `params` are
    /// refused: a careful server does not guess what a misspelt envelope meant.
    public static func parse(_ value: JSONValue) -> Result<RPCRequest, RPCFailure> {
        guard case .object(let object) = value else {
            return .failure(RPCFailure(id: .null, error: VaultError(.invalidRequest, "Request must be a JSON object")))
        }
        var id: JSONValue? = nil
        if let rawId = object["id"] {
            switch rawId {
            case .string, .number, .null: id = rawId
            default:
                return .failure(RPCFailure(id: .null, error: VaultError(.invalidRequest, "Request id must be a string, a number or null")))
            }
        }
        let answerId = id ?? .null
        guard object["jsonrpc"] == .string("2.0") else {
            return .failure(RPCFailure(id: answerId, error: VaultError(.invalidRequest, "Member 'jsonrpc' must be \"2.0\"")))
        }
        guard case .string(let method)? = object["method"] else {
            return .failure(RPCFailure(id: answerId, error: VaultError(.invalidRequest, "Member 'method' must be a string")))
        }
        for key in object.keys where !["jsonrpc", "id", "method", "params"].contains(key) {
            return .failure(RPCFailure(
                id: answerId,
                error: VaultError(.invalidRequest, "Unknown request member \(FieldReader.quotedIfSafe(key))(allowed: jsonrpc, id, method, params)")))
        }
        var params: JSONObject? = nil
        switch object["params"] {
        case nil: break
        case .object(let p)?: params = p
        case .array?:
            return .failure(RPCFailure(id: answerId, error: VaultError(.badRequest, "Params must be an object (by-name), not an array")))
        default:
            return .failure(RPCFailure(id: answerId, error: VaultError(.invalidRequest, "Member 'params' must be an object")))
        }
        return .success(RPCRequest(id: id, method: method, params: params))
    }

    /// The request as a JSON value, for clients.
    public var json: JSONValue {
        var object: JSONObject = ["jsonrpc": .string("2.0")]
        if let id { object["id"] = id }
        object["method"] = .string(method)
        if let params { object["params"] = .object(params) }
        return .object(object)
    }
}

/// A request that could not be accepted, with the id to answer it under.
public struct RPCFailure: Error, Sendable {
    public var id: JSONValue
    public var error: VaultError

    public init(id: JSONValue, error: VaultError) {
        self.id = id
        self.error = error
    }
}

/// Builders and readers for response objects.
public enum RPCResponse {
    /// `{"jsonrpc":"2.0","id":...,"result":...}`
    public static func success(id: JSONValue, result: JSONValue) -> JSONValue {
        .object(["jsonrpc": .string("2.0"), "id": id, "result": result])
    }

    /// `{"jsonrpc":"2.0","id":...,"error":{"code":...,"message":...,"data":{"code":...,"requestId":...}}}`
    public static func failure(id: JSONValue, error: VaultError, requestId: String) -> JSONValue {
        var data: JSONObject = ["code": .string(error.code.name), "requestId": .string(requestId)]
        if let reason = error.reason { data["reason"] = .string(reason) }
        if let retry = error.retryAfterMs { data["retryAfterMs"] = .int(retry) }
        let errorObject: JSONObject = [
            "code": .int(error.code.rpcCode),
            "message": .string(error.message),
            "data": .object(data),
        ]
        return .object(["jsonrpc": .string("2.0"), "id": id, "error": .object(errorObject)])
    }

    /// Reads a response object: the id, and either the result or the error.
    public static func parse(_ value: JSONValue) throws(VaultError) -> (id: JSONValue, result: Result<JSONValue, VaultError>) {
        guard case .object(let object) = value, object["jsonrpc"] == .string("2.0"), let id = object["id"] else {
            throw VaultError(.internalError, "The daemon sent a reply that is not a JSON-RPC 2.0 response")
        }
        if let result = object["result"] { return (id, .success(result)) }
        guard case .object(let errorObject)? = object["error"],
            let rpcCode = errorObject["code"]?.int64Value,
            let message = errorObject["message"]?.stringValue
        else {
            throw VaultError(.internalError, "The daemon sent a reply with neither result nor a well-formed error")
        }
        let data = errorObject["data"]?.objectValue
        let name = data?["code"]?.stringValue ?? "UNKNOWN"
        let error = VaultError(
            VaultErrorCode(rpcCode: Int(rpcCode), name: name),
            message,
            reason: data?["reason"]?.stringValue,
            retryAfterMs: data?["retryAfterMs"]?.int64Value.map { Int($0) },
            requestId: data?["requestId"]?.stringValue
        )
        return (id, .failure(error))
    }
}

/// The method names of protocol v1.
public enum RPCMethod {
    public static let store = "vault.store"
    public static let list = "vault.list"
    public static let get = "vault.get"
    public static let delete = "vault.delete"
    public static let exchange = "vault.exchange"
    public static let revoke = "grants.revoke"
    public static let listRevoked = "grants.listRevoked"
    public static let health = "system.health"
    public static let status = "system.status"
    public static let metrics = "system.metrics"

    /// Methods that only administrators (root, the daemon's uid, `--admin-uid`/`--admin-gid`) may call.
    public static let management: Set<String> = [store, list, get, delete, revoke, listRevoked, status, metrics]
}
