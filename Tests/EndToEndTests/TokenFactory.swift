import Crypto
import CryptoExtras
import Foundation
import GrantexVault

/// Signs grant tokens for tests with swift-crypto directly: none of the daemon's JWS code is used,
/// so a bug there cannot cancel out here.
struct TokenFactory: Sendable {
    enum Signer: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    struct Key: Sendable {
        var kid: String
        var signer: Signer
        /// Whether the JWK published for it says `alg`.
        var publishAlg = true

        var alg: String {
            switch signer {
            case .rsa: return "RS256"
            case .p256: return "ES256"
            case .ed25519: return "EdDSA"
            }
        }

        var jwk: JSONObject {
            var object: JSONObject
            switch signer {
            case .rsa(let key):
                let primitives = try! key.publicKey.getKeyPrimitives()
                object = ["kty": "RSA", "n": .string(b64(primitives.modulus)), "e": .string(b64(primitives.publicExponent))]
            case .p256(let key):
                let raw = key.publicKey.rawRepresentation
                object = ["kty": "EC", "crv": "P-256", "x": .string(b64(raw.prefix(32))), "y": .string(b64(raw.suffix(32)))]
            case .ed25519(let key):
                object = ["kty": "OKP", "crv": "Ed25519", "x": .string(b64(key.publicKey.rawRepresentation))]
            }
            object["kid"] = .string(kid)
            object["use"] = "sig"
            if publishAlg { object["alg"] = .string(alg) }
            return object
        }

        func sign(_ input: [UInt8]) -> [UInt8] {
            switch signer {
            case .rsa(let key): return Array(try! key.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            case .p256(let key): return Array(try! key.signature(for: SHA256.hash(data: input)).rawRepresentation)
            case .ed25519(let key): return Array(try! key.signature(for: input))
            }
        }
    }

    static let issuer = "https://grantex.dev"
    static let developer = "dev_test"

    let rsa = Key(kid: "rsa-1", signer: .rsa(try! _RSA.Signing.PrivateKey(keySize: .bits2048)))
    let ec = Key(kid: "ec-1", signer: .p256(P256.Signing.PrivateKey()))
    let ed = Key(kid: "ed-1", signer: .ed25519(Curve25519.Signing.PrivateKey()))
    /// An RSA key whose JWK has no `alg`: the jwt-kit trap.
    let rsaNoAlg = Key(kid: "rsa-noalg", signer: .rsa(try! _RSA.Signing.PrivateKey(keySize: .bits2048)), publishAlg: false)

    var jwks: JSONValue { .object(["keys": .array([rsa, ec, ed, rsaNoAlg].map { .object($0.jwk) })]) }

    /// Writes the JWKS to `path`.
    func writeJWKS(to path: String, keys: [Key]? = nil) throws {
        let document: JSONValue = keys.map { .object(["keys": .array($0.map { .object($0.jwk) })]) } ?? jwks
        try Data(document.jsonBytes).write(to: URL(fileURLWithPath: path))
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    /// Claims of a valid token for `sub`, which `edit` may change.
    static func claims(sub: String = "user_alice", scopes: [String] = ["github:read"], edit: (inout JSONObject) -> Void = { _ in }) -> JSONObject {
        var claims: JSONObject = [
            "iss": .string(issuer), "sub": .string(sub), "agt": "agent_1", "dev": .string(developer),
            "scp": .array(scopes.map(JSONValue.string)), "jti": .string("jti_" + UUID().uuidString), "grnt": .string("grnt_" + UUID().uuidString),
            "iat": .int(now), "exp": .int(now + 3600),
        ]
        edit(&claims)
        return claims
    }

    /// A compact JWS over `claims`, signed by `key` (header alg/kid from it unless overridden).
    func token(_ claims: JSONObject, key: Key? = nil, header: JSONObject? = nil) -> String {
        let key = key ?? rsa
        let header = header ?? ["alg": .string(key.alg), "typ": "JWT", "kid": .string(key.kid)]
        let input = b64(header.jsonBytes) + "." + b64(JSONValue.object(claims).jsonBytes)
        return input + "." + b64(key.sign(Array(input.utf8)))
    }

    /// An HS256 token whose HMAC key is the RSA public key's bytes: the classic key-confusion attack.
    func hmacWithPublicKey(_ claims: JSONObject) -> String {
        guard case .rsa(let key) = rsa.signer else { fatalError() }
        let header: JSONObject = ["alg": "HS256", "typ": "JWT", "kid": .string(rsa.kid)]
        let input = b64(header.jsonBytes) + "." + b64(JSONValue.object(claims).jsonBytes)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(key.publicKey.pemRepresentation.utf8)))
        return input + "." + b64(Array(mac))
    }
}

func b64<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}
