import Logging
import Synchronization
import VaultProtocol

/// What the daemon tells `system.status` about itself.
public struct ServiceInfo: Sendable {
    public var startedAt: Timestamp

    public init(startedAt: Timestamp) {
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
    public let verifier: GrantVerifier
    public let audit: AuditLog
    public let metrics: VaultMetrics
    private let accessPolicy: Mutex<AccessPolicy>
    private let rateLimiter: FailureRateLimiter
    private let info: ServiceInfo
    private let clock: VaultClock

    public init(
        store: CredentialStore, audit: AuditLog, verifier: GrantVerifier, policy: AccessPolicy, info: ServiceInfo,
        rateLimiter: FailureRateLimiter = FailureRateLimiter(), metrics: VaultMetrics = VaultMetrics(), clock: VaultClock = .system
    ) {
        self.metrics = metrics
        self.store = store
        self.audit = audit
        self.verifier = verifier
        self.accessPolicy = Mutex(policy)
        self.rateLimiter = rateLimiter
        self.info = info
        self.clock = clock
    }

    /// Who may manage; replaced on a configuration reload.
    public var policy: AccessPolicy {
        get { accessPolicy.withLock { $0 } }
        set { accessPolicy.withLock { $0 = newValue } }
    }

    public typealias Completion = @Sendable (Result<JSONValue, VaultError>) -> Void

    /// Runs one request. Access is checked before params are read, so a peer that may not manage
    /// learns nothing about the store from validation errors.
    public func handle(_ request: RPCRequest, context: RequestContext, completion original: @escaping Completion) {
        let started = ContinuousClock.now
        let metrics = self.metrics
        let method = request.method
        let completion: Completion = { result in
            metrics.recordRequest(method: method, code: result.failure?.code.name)
            if method == RPCMethod.exchange { metrics.recordExchange(ContinuousClock.now - started) }
            original(result)
        }
        if RPCMethod.management.contains(request.method), !policy.mayManage(context.peer) {
            completion(.failure(VaultError(.forbidden, "Method \(request.method) is not allowed for uid \(context.peer.uid)")))
            return
        }
        do throws(VaultError) {
            switch request.method {
            case RPCMethod.store: try processStore(request.params, context, completion)
            case RPCMethod.list: completion(.success(try processList(request.params)))
            case RPCMethod.get: completion(.success(try processGet(request.params)))
            case RPCMethod.delete: try processDelete(request.params, context, completion)
            case RPCMethod.exchange: completion(processExchange(request.params, context))
            case RPCMethod.revoke: try processRevoke(request.params, context, completion)
            case RPCMethod.listRevoked: completion(.success(try processListRevoked(request.params)))
            case RPCMethod.health: completion(.success(try processHealth(request.params)))
            case RPCMethod.status: completion(.success(try processStatus(request.params)))
            case RPCMethod.metrics: completion(.success(try processMetrics(request.params)))
            default:
                // The name is not echoed: a confused client may have put a token there.
                throw VaultError(.methodNotFound, "Method not found")
            }
        } catch {
            completion(.failure(error))
        }
    }

    private func processStore(_ params: JSONObject?, _ context: RequestContext, _ completion: @escaping Completion) throws(VaultError) {
        let validated = try StoreCredentialParams(validating: params)
        store.store(validated) { [self] result in
            let entry = auditEntry(RPCMethod.store, context, result: result.map { _ in () }, principalId: validated.principalId,
                service: validated.service, credentialId: try? result.get().id)
            completion(audited(entry, result.map(\.json)))
        }
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

    private func processDelete(_ params: JSONObject?, _ context: RequestContext, _ completion: @escaping Completion) throws(VaultError) {
        let id = try readId(params)
        let existing = store.credential(id: id)
        store.delete(id: id) { [self] result in
            let entry = auditEntry(RPCMethod.delete, context, result: result.map { _ in () }, principalId: existing?.principalId,
                service: existing?.service, credentialId: id)
            completion(audited(entry, result.map(\.json)))
        }
    }

    // MARK: - Exchange

    /// The scopes that allow exchanging a credential of `service` (PROTOCOL.md step 5).
    static func exchangeScopes(for service: String) -> Set<String> {
        ["*", "\(service):*", "\(service):read", "\(service):credentials:read", "vault:\(service):*", "vault:\(service):read",
         "vault:credentials:exchange"]
    }

    private func processExchange(_ params: JSONObject?, _ context: RequestContext) -> Result<JSONValue, VaultError> {
        let now = clock.now()
        var claims: GrantClaims? = nil
        // Audited whenever it is valid, whichever step refuses the exchange.
        var service: String? = params?["service"]?.stringValue.flatMap { try? Validation.service($0) }
        var credentialId: String? = nil
        let result: Result<JSONValue, VaultError> = {
            do throws(VaultError) {
                let reader = try FieldReader(params: params, allowed: ["grantToken", "service"])
                // 1-3: the token (its own errors are UNAUTHORIZED, whatever is wrong with `service`).
                guard case .string(let token)? = reader.object["grantToken"], !token.isEmpty else {
                    throw VaultError(.unauthorized, "Grant token is missing", reason: "malformed")
                }
                switch verifier.verify(token, now: now) {
                case .failure(let refusal):
                    claims = refusal.claims
                    throw VaultError(.unauthorized, refusal.message, reason: refusal.reason)
                case .success(let verified):
                    claims = verified
                }
                let grant = claims!
                if store.isRevoked(jti: grant.jti, grantId: grant.grantId) {
                    throw VaultError(.unauthorized, "Grant token has been revoked", reason: "revoked")
                }
                // 4: the service.
                let validService = try Validation.service(try reader.string("service"))
                service = validService
                // 5: the scope.
                let allowed = Self.exchangeScopes(for: validService)
                guard grant.scopes.contains(where: { allowed.contains($0.lowercased()) }) else {
                    throw VaultError(.forbidden, "Grant token is not scoped for \(validService) credential exchange", reason: "scope")
                }
                // 6: the credential of this principal and service.
                guard let credential = store.credential(for: CredentialKey(principalId: grant.sub, service: validService)),
                    let secrets = store.secrets(of: credential)
                else {
                    throw VaultError(.notFound, "No credential found for this principal and service", reason: "not_found")
                }
                credentialId = credential.id
                return .success(ExchangeCredentialResponse(
                    accessToken: secrets.accessToken, service: credential.service, credentialType: credential.credentialType,
                    tokenExpiresAt: credential.tokenExpiresAt?.rfc3339, metadata: credential.metadata).json)
            } catch {
                return .failure(error)
            }
        }()
        var answer = result.mapError { error in
            // Every exchange failure carries data.reason (PROTOCOL.md); name the ones that have none.
            var error = error
            if error.reason == nil { error.reason = error.code == .badRequest ? "bad_request" : error.code.name.lowercased() }
            return error
        }
        if case .failure = answer, let retryAfter = rateLimiter.recordFailure(uid: context.peer.uid, now: now) {
            answer = .failure(VaultError(
                .rateLimited, "Too many failed exchanges from this peer; retry later", reason: "rate_limited", retryAfterMs: retryAfter))
        }
        let entry = AuditEntry(
            time: now, method: RPCMethod.exchange, requestId: context.requestId, peer: context.peer,
            outcome: answer.isSuccess ? "allowed" : "refused", code: answer.failure?.code.name, reason: answer.failure?.reason,
            agent: claims?.agt, grantId: claims?.grantId, jti: claims?.jti, principalId: claims?.sub, service: service,
            credentialId: credentialId)
        return audited(entry, answer)
    }

    private func processRevoke(_ params: JSONObject?, _ context: RequestContext, _ completion: @escaping Completion) throws(VaultError) {
        let reader = try FieldReader(params: params, allowed: ["jti", "grantId", "expiresAt"])
        let jti = try reader.optionalString("jti")
        let grantId = try reader.optionalString("grantId")
        guard (jti == nil) != (grantId == nil) else { throw .badRequest("Give exactly one of 'jti' and 'grantId'") }
        let kind: Revocation.Kind = jti != nil ? .jti : .grant
        let value = (jti ?? grantId)!
        guard Limits.revocationIdLength.contains(value.unicodeScalars.count) else {
            throw .badRequest("Parameter '\(kind == .jti ? "jti" : "grantId")' must be 1-256 characters")
        }
        let expiresAt = try reader.optionalString("expiresAt").map { (raw) throws(VaultError) in
            try Validation.timestamp(raw, parameter: "expiresAt")
        }
        store.revoke(kind, value, expiresAt: expiresAt) { [self] result in
            if case .success = result {
                verifier.forget { kind == .jti ? $0.jti == value : $0.grantId == value }
            }
            let entry = auditEntry(
                RPCMethod.revoke, context, result: result.map { _ in () }, grantId: kind == .grant ? value : nil,
                jti: kind == .jti ? value : nil)
            completion(audited(entry, result.map { _ in .object(["revoked": true]) }))
        }
    }

    private func processListRevoked(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        _ = try FieldReader(params: params, allowed: [])
        return .object(["revoked": .array(store.revocations.map(\.json))])
    }

    // MARK: - Audit

    private func auditEntry(
        _ method: String, _ context: RequestContext, result: Result<Void, VaultError>, principalId: String? = nil,
        service: String? = nil, credentialId: String? = nil, grantId: String? = nil, jti: String? = nil
    ) -> AuditEntry {
        AuditEntry(
            time: clock.now(), method: method, requestId: context.requestId, peer: context.peer,
            outcome: result.isSuccess ? "ok" : "failed", code: result.failure?.code.name, reason: result.failure?.reason,
            grantId: grantId, jti: jti, principalId: principalId, service: service, credentialId: credentialId)
    }

    /// Appends `entry` and returns `result`, or `UNAVAILABLE` when the entry could not be written:
    /// an answer is never sent without its audit entry.
    private func audited(_ entry: AuditEntry, _ result: Result<JSONValue, VaultError>) -> Result<JSONValue, VaultError> {
        do throws(VaultError) {
            try audit.append(entry)
            return result
        } catch {
            return .failure(error)
        }
    }

    private func processHealth(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        _ = try FieldReader(params: params, allowed: [])
        return .object(["status": .string("ok"), "version": .string(GrantexVaultVersion.current)])
    }

    private func processMetrics(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        _ = try FieldReader(params: params, allowed: [])
        let text = metrics.render(
            credentialCount: store.count, revokedCount: store.revocations.count, auditEntryCount: audit.entryCount)
        return .object(["contentType": "text/plain; version=0.0.4; charset=utf-8", "text": .string(text)])
    }

    private func processStatus(_ params: JSONObject?) throws(VaultError) -> JSONValue {
        _ = try FieldReader(params: params, allowed: [])
        let uptimeMs = clock.now().millisecondsSinceEpoch - info.startedAt.millisecondsSinceEpoch
        return .object([
            "version": .string(GrantexVaultVersion.current),
            "uptimeSeconds": .int(max(0, uptimeMs / 1000)),
            "credentialCount": .int(store.count),
            "storePath": .string(store.logPath),
            "issuer": .string(verifier.policy.issuer),
            "jwksKeyIds": .array(verifier.keyIds.map(JSONValue.string)),
            "revokedCount": .int(store.revocations.count),
            "auditEntries": .int(audit.entryCount),
            "auditHead": .string(audit.headHash),
            "tokenCache": .object([
                "hits": .int(verifier.cacheStatistics.hits), "misses": .int(verifier.cacheStatistics.misses),
                "entries": .int(verifier.cacheStatistics.entries),
            ]),
        ])
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }

    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
