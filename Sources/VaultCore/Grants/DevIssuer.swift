import Crypto
import CryptoExtras
import Foundation
import VaultProtocol

/// A local stand-in for the Grantex issuer, for `--dev` only: an RSA-2048 key, its JWKS, and the
/// settings `grantex-vault dev token` needs to sign grant tokens the dev daemon accepts. Lets the
/// quick start show store -> token -> exchange with no Grantex account. Never used outside `--dev`.
public enum DevIssuer {
    public static let privateKeyFileName = "dev-issuer.pem"
    public static let jwksFileName = "dev-jwks.json"
    public static let settingsFileName = "dev-issuer.json"
    public static let defaultDeveloperId = "dev_local"

    public struct Settings: Sendable {
        public var issuer: String
        public var developerId: String
        public var audience: String?
        public var kid: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Creates the key on first use, and (re)writes the JWKS and settings. Returns the JWKS path.
    public static func prepare(directory: String, issuer: String, developerId: String, audience: String?) throws(Failure) -> String {
        let keyPath = directory + "/" + privateKeyFileName
        let key: _RSA.Signing.PrivateKey
        if let pem = try? String(contentsOfFile: keyPath, encoding: .utf8) {
            guard let loaded = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) else {
                throw Failure(message: "\(keyPath) is not an RSA private key; delete it to make a new dev issuer")
            }
            key = loaded
        } else {
            guard let created = try? _RSA.Signing.PrivateKey(keySize: .bits2048) else {
                throw Failure(message: "cannot generate the dev issuer key")
            }
            try write(Array(created.pemRepresentation.utf8), to: keyPath, exclusive: true)
            key = created
        }
        guard let primitives = try? key.publicKey.getKeyPrimitives() else { throw Failure(message: "cannot read the dev issuer key") }
        let kid = "dev-" + Hex.encode(Array(SHA256.hash(data: primitives.modulus)).prefix(8))
        let jwk: JSONObject = [
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": .string(kid),
            "n": .string(Base64URL.encode(primitives.modulus)), "e": .string(Base64URL.encode(primitives.publicExponent)),
        ]
        let jwksPath = directory + "/" + jwksFileName
        try write(JSONValue.object(["keys": [.object(jwk)]]).jsonBytes, to: jwksPath, exclusive: false)
        var settings: JSONObject = ["issuer": .string(issuer), "developerId": .string(developerId), "kid": .string(kid)]
        if let audience { settings["audience"] = .string(audience) }
        try write(settings.jsonBytes, to: directory + "/" + settingsFileName, exclusive: false)
        return jwksPath
    }

    /// Signs a grant token with the dev issuer in `directory` (a `--dev` daemon's folder).
    public static func signToken(
        directory: String, principalId: String, scopes: [String], ttlSeconds: Int, developerId: String?, agentId: String,
        now: Timestamp = VaultClock.system.now()
    ) throws(Failure) -> String {
        let keyPath = directory + "/" + privateKeyFileName
        guard let pem = try? String(contentsOfFile: keyPath, encoding: .utf8), let key = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) else {
            throw Failure(message: "no dev issuer in \(directory): start `grantex-vaultd --dev` in this folder first")
        }
        guard let data = FileManager.default.contents(atPath: directory + "/" + settingsFileName),
            case .object(let settings)? = try? JSONParser.parse(Array(data)),
            let issuer = settings["issuer"]?.stringValue, let kid = settings["kid"]?.stringValue,
            let defaultDeveloper = settings["developerId"]?.stringValue
        else { throw Failure(message: "\(directory)/\(settingsFileName) is missing or malformed: restart `grantex-vaultd --dev`") }
        let seconds = now.millisecondsSinceEpoch / 1000
        var claims: JSONObject = [
            "iss": .string(issuer), "sub": .string(principalId), "agt": .string(agentId),
            "dev": .string(developerId ?? defaultDeveloper), "scp": .array(scopes.map(JSONValue.string)),
            "jti": .string("tok_" + ULID.make(at: now)), "grnt": .string("grnt_" + ULID.make(at: now)),
            "iat": .int(seconds), "exp": .int(seconds + Int64(ttlSeconds)),
        ]
        if let audience = settings["audience"]?.stringValue { claims["aud"] = .string(audience) }
        let header: JSONObject = ["alg": "RS256", "typ": "JWT", "kid": .string(kid)]
        let signingInput = Base64URL.encode(header.jsonBytes) + "." + Base64URL.encode(claims.jsonBytes)
        guard let signature = try? key.signature(for: SHA256.hash(data: Array(signingInput.utf8)), padding: .insecurePKCS1v1_5) else {
            throw Failure(message: "cannot sign with the dev issuer key")
        }
        return signingInput + "." + Base64URL.encode(signature.rawRepresentation)
    }

    private static func write(_ bytes: [UInt8], to path: String, exclusive: Bool) throws(Failure) {
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC)
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        do throws(Durable.IOError) {
            try Durable.pwriteAll(fd, bytes, at: 0, path: path)
            try Durable.fullSync(fd, path: path)
        } catch {
            throw Failure(message: "cannot write \(path): \(error)")
        }
    }
}
