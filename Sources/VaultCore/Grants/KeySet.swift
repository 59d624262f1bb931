import Crypto
import CryptoExtras
import Foundation
import VaultProtocol

/// The signature algorithms a grant token may use. Never `none`, never HMAC: with HMAC, a public
/// key published in the JWKS would become a shared secret anyone could sign with.
public enum GrantAlgorithm: String, Sendable, CaseIterable {
    case rs256 = "RS256"
    case es256 = "ES256"
    case edDSA = "EdDSA"

    /// The JWK `kty` a key for this algorithm has.
    var keyType: String {
        switch self {
        case .rs256: return "RSA"
        case .es256: return "EC"
        case .edDSA: return "OKP"
        }
    }
}

/// One public key of the issuer, with the algorithm it verifies. The algorithm comes from the JWK
/// (its `kty`/`crv`, and `alg` when present), never from a token header.
public struct VerificationKey: Sendable {
    public enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    public var kid: String?
    public var algorithm: GrantAlgorithm
    public var material: Material

    /// True when `signature` over `signingInput` is valid for this key.
    func verify(signature: [UInt8], signingInput: [UInt8]) -> Bool {
        switch material {
        case .rsa(let key):
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: signingInput),
                padding: .insecurePKCS1v1_5)
        case .p256(let key):
            // JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 section 3.4), not DER.
            guard signature.count == 64, let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: SHA256.hash(data: signingInput))
        case .ed25519(let key):
            return key.isValidSignature(signature, for: signingInput)
        }
    }
}

/// Why a JWKS file cannot be used.
public struct KeySetError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The issuer's public keys, loaded from a JWKS document (`{"keys":[...]}`, or a `jwksSnapshot`
/// object holding `keys`).
///
/// Keys this daemon cannot use for grant tokens (encryption keys, other curves or algorithms,
/// RSA under 2048 bits) are skipped and reported in `skipped`; a set with no usable key is refused.
public struct KeySet: Sendable {
    public var keys: [VerificationKey]
    /// One line per JWK that was not loaded, with why (no key material in it).
    public var skipped: [String]

    public init(keys: [VerificationKey], skipped: [String] = []) {
        self.keys = keys
        self.skipped = skipped
    }

    /// The key ids, for `system.status`.
    public var keyIds: [String] { keys.compactMap(\.kid) }

    public static func load(path: String) throws(KeySetError) -> KeySet {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeySetError(message: "cannot read JWKS file \(path)")
        }
        do throws(KeySetError) {
            return try parse(Array(data))
        } catch {
            throw KeySetError(message: "JWKS file \(path): \(error.message)")
        }
    }

    public static func parse(_ bytes: [UInt8]) throws(KeySetError) -> KeySet {
        guard case .object(let document)? = try? JSONParser.parse(bytes) else {
            throw KeySetError(message: "not a JSON object")
        }
        let list: [JSONValue]
        if case .array(let keys)? = document["keys"] {
            list = keys
        } else if case .array(let keys)? = document["jwksSnapshot"]?.objectValue?["keys"] {
            list = keys
        } else {
            throw KeySetError(message: "no \"keys\" array (nor a \"jwksSnapshot\" object holding one)")
        }
        var keys: [VerificationKey] = []
        var skipped: [String] = []
        for (position, entry) in list.enumerated() {
            guard case .object(let jwk) = entry else {
                skipped.append("key #\(position): not an object")
                continue
            }
            let label = jwk["kid"]?.stringValue.map { "key '\($0.prefix(64))'" } ?? "key #\(position)"
            switch parseKey(jwk) {
            case .success(let key): keys.append(key)
            case .failure(let reason): skipped.append("\(label): \(reason.message)")
            }
        }
        guard !keys.isEmpty else {
            throw KeySetError(message: "no usable signing key (RS256, ES256 or EdDSA)" + (skipped.isEmpty ? "" : ": " + skipped.joined(separator: "; ")))
        }
        return KeySet(keys: keys, skipped: skipped)
    }

    private static func parseKey(_ jwk: JSONObject) -> Result<VerificationKey, KeySetError> {
        func fail(_ message: String) -> Result<VerificationKey, KeySetError> { .failure(KeySetError(message: message)) }
        if let use = jwk["use"], use != .string("sig") { return fail("\"use\" is not \"sig\"") }
        if case .array(let ops)? = jwk["key_ops"], !ops.contains(.string("verify")) { return fail("\"key_ops\" lacks \"verify\"") }
        let kid = jwk["kid"]?.stringValue
        let declared = jwk["alg"]?.stringValue
        func bytes(_ name: String) -> [UInt8]? { jwk[name]?.stringValue.flatMap { Base64URL.decode($0) } }
        switch jwk["kty"]?.stringValue {
        case "RSA":
            guard declared == nil || declared == "RS256" else { return fail("RSA key for \(declared!.prefix(16)), only RS256 is accepted") }
            guard let n = bytes("n"), let e = bytes("e") else { return fail("RSA key without n/e") }
            guard let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return fail("RSA key is invalid or shorter than 2048 bits") }
            return .success(VerificationKey(kid: kid, algorithm: .rs256, material: .rsa(key)))
        case "EC":
            guard jwk["crv"] == "P-256" else { return fail("EC key on a curve other than P-256") }
            guard declared == nil || declared == "ES256" else { return fail("EC key for \(declared!.prefix(16)), only ES256 is accepted") }
            guard let x = bytes("x"), let y = bytes("y"), x.count == 32, y.count == 32,
                let key = try? P256.Signing.PublicKey(rawRepresentation: x + y)
            else { return fail("P-256 key with invalid x/y") }
            return .success(VerificationKey(kid: kid, algorithm: .es256, material: .p256(key)))
        case "OKP":
            guard jwk["crv"] == "Ed25519" else { return fail("OKP key on a curve other than Ed25519") }
            guard declared == nil || declared == "EdDSA" || declared == "Ed25519" else {
                return fail("Ed25519 key for \(declared!.prefix(16)), only EdDSA is accepted")
            }
            guard let x = bytes("x"), x.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                return fail("Ed25519 key with invalid x")
            }
            return .success(VerificationKey(kid: kid, algorithm: .edDSA, material: .ed25519(key)))
        default:
            return fail("unsupported kty")
        }
    }
}
