import Logging
import VaultProtocol

/// What the daemon tells `system.status` about its configuration.
public struct ServiceInfo: Sendable {
    public var issuer: String
    public var startedAt: Timestamp

    public init(issuer: String, startedAt: Timestamp) {
        self.issuer = issuer
        self.startedAt = startedAt
    }
}

/// The per-request context: the id that ties the answer to its log line, and who asked.
public struct RequestContext: Sendable {
    public var requestId: String
    public var peer: Peer

    public init(requestId: String, peer: Peer) {
        self.requestId = requestId
        self.peer = peer
    }
}

/// The vault's methods, independent of any transport: one `switch` dispatching to a
/// `process<Verb>` function per method (the ssh-agent shape). The server hands it checked
/// JSON-RPC requests; it answers through `completion`, possibly from another thread (writes answer
/// once durable).
public final class VaultService: Sendable {
    public let store: CredentialStore
    public let policy: AccessPolicy
    private let info: ServiceInfo
    private let clock: VaultClock

    public init(store: CredentialStore, policy: AccessPolicy, info: ServiceInfo, clock: VaultClock = .system) {
        self.store = store
        self.policy = policy
        self.info = info
        self.clock = clock
    }

    public typealias Completion = @Sendable (Result<JSONValue, VaultError>) -> Void

    /// Runs one request. Access is checked before params are read, so a peer that may not manage
    /// learns nothing about the store from validation errors.
    public func handle(_ request: RPCRequest, context: RequestContext, completion: @escaping Completion) {
        if RPCMethod.management.contains(request.method), !policy.mayManage(context.peer) {
            completion(.failure(VaultError(.forbidden, "Method \(request.method) is not allowed for uid \(context.peer.uid)")))
            return
        }
        do throws(VaultError) {
            switch request.method {
            case RPCMethod.store: try processStore(request.params, completion)
            case RPCMethod.list: completion(.success(try processList(request.params)))
            case RPCMethod.get: completion(.success(try processGet(request.params)))
            case RPCMethod.delete: try processDelete(request.params, completion)
            case RPCMethod.health: completion(.success(try processHealth(request.params)))
            case RPCMethod.status: completion(.success(try processStatus(request.params)))
            case RPCMethod.exchange, RPCMethod.revoke, RPCMethod.listRevoked:
                throw VaultError(.methodNotFound, "Method \(request.method) is not available in this build")
            default:
                // The name is not echoed: a confused client may have put a token there.
                throw VaultError(.methodNotFound, "Method not found")
            }
        } catch {
            completion(.failure(error))
        }
    }

    private func processStore(_ params: JSONObject?, _ completion: @escaping Completion) throws(VaultError) {
        let validated = try StoreCredentialParams(validating: params)
        store.store(validated) { result in completion(result.map(\.json)) }
    }

    private func processList(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        try store.list(try ListVaultCredentialsParams(validating: params)).json
    }

    private func readId(_ params: JSONObject?) throws(VaultError) -> String {
        let reader = try FieldReader(params: params, allowed: ["id"])
        let id = try reader.string("id")
        guard !id.isEmpty else { throw .badRequest("Parameter 'id' must not be empty") }
        return id
    }

    private func processGet(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        let id = try readId(params)
        guard let credential = store.credential(id: id) else { throw .notFound() }
        return credential.view.json
    }

    private func processDelete(_ params: JSONObject?, _ completion: @escaping Completion) throws(VaultError) {
        let id = try readId(params)
        store.delete(id: id) { result in completion(result.map(\.json)) }
    }

    private func processHealth(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        _ = try FieldReader(params: params, allowed: [])
        return .object(["status": .string("ok"), "version": .string(GrantexVaultVersion.current)])
    }

    private func processStatus(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        _ = try FieldReader(params: params, allowed: [])
        let uptimeMs = clock.now().millisecondsSinceEpoch - info.startedAt.millisecondsSinceEpoch
        return .object([
            "version": .string(GrantexVaultVersion.current),
            "uptimeSeconds": .int(max(0, uptimeMs / 1000)),
            "credentialCount": .int(store.count),
            "storePath": .string(store.logPath),
            "issuer": .string(info.issuer),
            "jwksKeyIds": .array([]),
            "revokedCount": .int(0),
        ])
    }
}
