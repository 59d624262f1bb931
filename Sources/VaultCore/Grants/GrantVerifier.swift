import Synchronization
import VaultProtocol

/// What a grant token must satisfy besides its signature.
public struct GrantPolicy: Sendable, Equatable {
    /// The only accepted `iss`.
    public var issuer: String
    /// Accepted `dev` claims; empty means every token is `wrong_developer`.
    public var developerIds: Set<String>
    /// When set, `aud` must contain it.
    public var audience: String?
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds.
    public var leewaySeconds: Int

    public init(issuer: String, developerIds: Set<String>, audience: String?, leewaySeconds: Int) {
        self.issuer = issuer
        self.developerIds = developerIds
        self.audience = audience
        self.leewaySeconds = leewaySeconds
    }
}

/// The claims of a verified grant token.
public struct GrantClaims: Sendable, Equatable {
    /// The principal (end user) whose credentials the token unlocks.
    public var sub: String
    /// The agent the grant was issued to.
    public var agt: String
    /// The developer that owns the agent.
    public var dev: String
    /// Scopes, as written in the token.
    public var scopes: [String]
    public var jti: String
    /// The grant id: `grnt`, or `jti` when the token has none.
    public var grantId: String
    public var issuedAt: Double
    public var expiresAt: Double
    public var notBefore: Double?
    public var issuer: String?
    public var audience: [String]?
}

/// A refused token: the `data.reason` of PROTOCOL.md and a message without secrets. `claims` is
/// set when the token got far enough to have them (for the audit log).
public struct GrantRefusal: Error, Sendable, Equatable {
    public var reason: String
    public var message: String
    public var claims: GrantClaims?

    static func malformed(_ detail: String) -> GrantRefusal {
        GrantRefusal(reason: "malformed", message: "Grant token is malformed: \(detail)")
    }
}

/// Verifies grant tokens locally, in the order PROTOCOL.md fixes: shape, algorithm and key,
/// signature, claims. (Revocation, the last check of step 3, needs the store: `VaultService` does it.)
///
/// Why not jwt-kit: its key collection lets a token header pick the algorithm of a JWK that has no
/// `alg`, and caches that choice per `kid` before the signature is checked, so one forged header
/// breaks later valid tokens. Here the algorithm is a property of each loaded key (from its `kty`/
/// `crv`/`alg`), a header can only select among keys that already have it, and nothing is cached
/// until a signature verified. The JWS compact format itself is three base64url parts, which needs
/// no library; the signature primitives are swift-crypto's.
///
/// Verified tokens are cached by a BLAKE2b hash of the whole token, so a repeated exchange skips
/// parsing and the signature check. Claims are re-checked on every use (time, issuer, developer,
/// audience), entries never outlive the token's `exp`, and the cache is emptied when keys or
/// policy change.
public final class GrantVerifier: Sendable {
    public static let cacheCapacity = 16_384

    private struct Configuration: Sendable {
        var keys: KeySet?
        var policy: GrantPolicy
    }

    private struct CacheEntry {
        var claims: GrantClaims
    }

    private let configuration: Mutex<Configuration>
    private let cache = Mutex<[[UInt8]: CacheEntry]>([:])
    private let counters = Mutex<(hits: Int, misses: Int)>((0, 0))
    private let metrics: VaultMetrics?

    public init(keys: KeySet?, policy: GrantPolicy, metrics: VaultMetrics? = nil) {
        configuration = Mutex(Configuration(keys: keys, policy: policy))
        self.metrics = metrics
    }

    /// Installs new keys and policy (SIGHUP reload); cached verifications are dropped.
    public func reconfigure(keys: KeySet?, policy: GrantPolicy) {
        configuration.withLock { $0 = Configuration(keys: keys, policy: policy) }
        cache.withLock { $0.removeAll() }
    }

    /// The configured key ids.
    public var keyIds: [String] { configuration.withLock { $0.keys?.keyIds ?? [] } }

    public var policy: GrantPolicy { configuration.withLock { $0.policy } }

    /// Cache hits and misses since start.
    public var cacheStatistics: (hits: Int, misses: Int, entries: Int) {
        let (hits, misses) = counters.withLock { $0 }
        return (hits, misses, cache.withLock { $0.count })
    }

    /// Drops cached verifications of tokens matching `predicate` (used on revocation).
    public func forget(where predicate: (GrantClaims) -> Bool) {
        cache.withLock { entries in
            entries = entries.filter { !predicate($0.value.claims) }
        }
    }

    /// Checks `token` at time `now`: everything of PROTOCOL.md's steps 1-3 except revocation.
    public func verify(_ token: String, now: Timestamp) -> Result<GrantClaims, GrantRefusal> {
        let config = configuration.withLock { $0 }
        let digest = Sodium.hash(Array(token.utf8))
        if let cached = cache.withLock({ $0[digest] }) {
            counters.withLock { $0.hits += 1 }
            metrics?.recordTokenCache(hit: true)
            return checkClaims(cached.claims, policy: config.policy, now: now)
        }
        counters.withLock { $0.misses += 1 }
        metrics?.recordTokenCache(hit: false)
        let claims: GrantClaims
        switch verifySignatureAndShape(token, keys: config.keys) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let verified): claims = verified
        }
        let result = checkClaims(claims, policy: config.policy, now: now)
        if case .success = result { insert(digest, CacheEntry(claims: claims), now: now) }
        return result
    }

    private func insert(_ digest: [UInt8], _ entry: CacheEntry, now: Timestamp) {
        let nowSeconds = Double(now.millisecondsSinceEpoch) / 1000
        cache.withLock { entries in
            if entries.count >= Self.cacheCapacity {
                entries = entries.filter { $0.value.claims.expiresAt > nowSeconds }
                if entries.count >= Self.cacheCapacity {
                    // Still full of live tokens: drop a quarter. Correctness never depends on a hit.
                    for key in entries.keys.prefix(Self.cacheCapacity / 4) { entries[key] = nil }
                }
            }
            entries[digest] = entry
        }
    }

    // MARK: - Steps 1 and 2: shape, algorithm, key, signature; claim types of step 3

    private func verifySignatureAndShape(_ token: String, keys: KeySet?) -> Result<GrantClaims, GrantRefusal> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        // An empty signature is well-formed (an unsecured JWS, alg "none"); step 2 refuses it.
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .failure(.malformed("not a compact JWS (three base64url parts)"))
        }
        guard let headerBytes = Base64URL.decode(parts[0]), case .object(let header)? = try? JSONParser.parse(headerBytes) else {
            return .failure(.malformed("the header is not base64url-encoded JSON"))
        }
        guard let payloadBytes = Base64URL.decode(parts[1]), case .object(let payload)? = try? JSONParser.parse(payloadBytes) else {
            return .failure(.malformed("the payload is not base64url-encoded JSON"))
        }
        guard let signature = Base64URL.decode(parts[2]) else {
            return .failure(.malformed("the signature is not base64url"))
        }
        guard case .string(let algName)? = header["alg"] else { return .failure(.malformed("the header has no \"alg\"")) }
        if header["crit"] != nil { return .failure(.malformed("critical header extensions are not supported")) }
        let kid: String?
        switch header["kid"] {
        case nil: kid = nil
        case .string(let value)?: kid = value
        default: return .failure(.malformed("\"kid\" is not a string"))
        }
        guard let algorithm = GrantAlgorithm(rawValue: algName) else {
            return .failure(GrantRefusal(reason: "unsupported_alg", message: "Grant token algorithm is not accepted (RS256, ES256 or EdDSA only)"))
        }
        let candidates = (keys?.keys ?? []).filter { key in
            key.algorithm == algorithm && (kid == nil || key.kid == kid)
        }
        guard let key = candidates.first, kid != nil || candidates.count == 1 else {
            let message = kid == nil
                ? "Grant token has no kid and the JWKS does not hold exactly one \(algName) key"
                : "Grant token is signed with a key that is not in the configured JWKS"
            return .failure(GrantRefusal(reason: "unknown_key", message: message))
        }
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard key.verify(signature: signature, signingInput: signingInput) else {
            return .failure(GrantRefusal(reason: "bad_signature", message: "Grant token signature is invalid"))
        }
        return Self.typedClaims(payload)
    }

    private static func typedClaims(_ payload: JSONObject) -> Result<GrantClaims, GrantRefusal> {
        func missing(_ name: String) -> Result<GrantClaims, GrantRefusal> {
            .failure(GrantRefusal(reason: "missing_claims", message: "Grant token claim '\(name)' is missing or has the wrong type"))
        }
        func number(_ name: String) -> Double? {
            guard case .number(let literal)? = payload[name], let value = Double(literal), value.isFinite else { return nil }
            return value
        }
        guard let sub = payload["sub"]?.stringValue, !sub.isEmpty else { return missing("sub") }
        guard let agt = payload["agt"]?.stringValue else { return missing("agt") }
        guard let dev = payload["dev"]?.stringValue else { return missing("dev") }
        guard case .array(let rawScopes)? = payload["scp"] else { return missing("scp") }
        var scopes: [String] = []
        for scope in rawScopes {
            guard case .string(let text) = scope else { return missing("scp") }
            scopes.append(text)
        }
        guard let jti = payload["jti"]?.stringValue, !jti.isEmpty else { return missing("jti") }
        guard let iat = number("iat") else { return missing("iat") }
        guard let exp = number("exp") else { return missing("exp") }
        var notBefore: Double? = nil
        if payload["nbf"] != nil {
            guard let nbf = number("nbf") else { return missing("nbf") }
            notBefore = nbf
        }
        var grantId = jti
        if let grnt = payload["grnt"] {
            guard case .string(let value) = grnt, !value.isEmpty else { return missing("grnt") }
            grantId = value
        }
        var audience: [String]? = nil
        switch payload["aud"] {
        case nil: break
        case .string(let single)?: audience = [single]
        case .array(let many)?:
            var values: [String] = []
            for entry in many {
                guard case .string(let text) = entry else { return missing("aud") }
                values.append(text)
            }
            audience = values
        default: return missing("aud")
        }
        return .success(GrantClaims(
            sub: sub, agt: agt, dev: dev, scopes: scopes, jti: jti, grantId: grantId, issuedAt: iat, expiresAt: exp,
            notBefore: notBefore, issuer: payload["iss"]?.stringValue, audience: audience))
    }

    // MARK: - Step 3: claim values

    private func checkClaims(_ claims: GrantClaims, policy: GrantPolicy, now: Timestamp) -> Result<GrantClaims, GrantRefusal> {
        func refuse(_ reason: String, _ message: String) -> Result<GrantClaims, GrantRefusal> {
            .failure(GrantRefusal(reason: reason, message: message, claims: claims))
        }
        guard claims.issuer == policy.issuer else { return refuse("wrong_issuer", "Grant token was not issued by the configured issuer") }
        let nowSeconds = Double(now.millisecondsSinceEpoch) / 1000
        let leeway = Double(policy.leewaySeconds)
        if nowSeconds >= claims.expiresAt + leeway { return refuse("expired", "Grant token has expired") }
        if let nbf = claims.notBefore, nowSeconds + leeway < nbf { return refuse("not_yet_valid", "Grant token is not valid yet (nbf)") }
        if nowSeconds + leeway < claims.issuedAt { return refuse("not_yet_valid", "Grant token was issued in the future (iat)") }
        guard policy.developerIds.contains(claims.dev) else {
            return refuse("wrong_developer", "Grant token belongs to a developer this vault does not serve")
        }
        if let audience = policy.audience, !(claims.audience ?? []).contains(audience) {
            return refuse("wrong_audience", "Grant token is not intended for this vault (aud)")
        }
        return .success(claims)
    }
}
