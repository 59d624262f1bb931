import Foundation
import GrantexVault
import Testing

/// vault.exchange through the real daemon: PROTOCOL.md's check order, every `data.reason`.
@Suite("Grant token exchange")
struct ExchangeTests {
    /// A daemon with the factory's JWKS, developer `dev_test`, and credentials for alice and bob.
    final class Setup: @unchecked Sendable {
        // @unchecked: built once, then only read.
        let factory = TokenFactory()
        let daemon: Daemon
        let connection: RawConnection

        init(extra: [String] = []) async throws {
            let probe = try await Daemon.started(arguments: ["--idle-timeout", "600"])  // only for its scratch + key
            try factory.writeJWKS(to: probe.scratch.file("jwks.json"))
            try await probe.stop()
            daemon = probe
            daemon.extraArgumentsOverride = [
                "--jwks", probe.scratch.file("jwks.json"), "--developer-id", TokenFactory.developer,
                "--exchange-failure-burst", "100000", "--idle-timeout", "600",
            ] + extra
            try await daemon.start()
            connection = try RawConnection(daemon.socketPath)
            for (principal, service, token) in [("user_alice", "github", "gho_alice"), ("user_alice", "slack", "xoxb_alice"), ("user_bob", "slack", "xoxb_bob")] {
                let answer = try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":{"principalId":"\#(principal)","service":"\#(service)","accessToken":"\#(token)","metadata":{"team":"core"}}}"#)
                precondition(answer.result != nil, "store failed: \(answer)")
            }
        }

        func exchange(_ token: String?, service: String? = "github") throws -> JSONObject {
            var params = JSONObject()
            if let token { params["grantToken"] = .string(token) }
            if let service { params["service"] = .string(service) }
            let request: JSONValue = .object(["jsonrpc": "2.0", "id": 1, "method": "vault.exchange", "params": .object(params)])
            return try connection.call(request.jsonString)
        }

        /// (rpc code, data.code, data.reason) of an answer, or the access token on success.
        func outcome(_ token: String?, service: String? = "github") throws -> String {
            let answer = try exchange(token, service: service)
            if let result = answer.result { return "ok:" + (result["accessToken"]?.stringValue ?? "?") }
            let data = answer["error"]?.objectValue?["data"]?.objectValue
            return "\(answer.errorRPCCode ?? 0) \(data?["code"]?.stringValue ?? "?") \(data?["reason"]?.stringValue ?? "-")"
        }
    }

    @Test("valid tokens of every accepted algorithm get the principal's token and nothing else")
    func validTokens() async throws {
        let setup = try await Setup()
        let f = setup.factory
        for key in [f.rsa, f.ec, f.ed] {
            #expect(try setup.outcome(f.token(TokenFactory.claims(), key: key)) == "ok:gho_alice", "\(key.alg)")
        }
        let answer = try setup.exchange(f.token(TokenFactory.claims()))
        let result = try #require(answer.result)
        #expect(result["service"] == "github")
        #expect(result["credentialType"] == "oauth2")
        #expect(result["tokenExpiresAt"] == .null)
        #expect(result["metadata"] == .object(["team": "core"]))
        #expect(result.keys.sorted() == ["accessToken", "credentialType", "metadata", "service", "tokenExpiresAt"])
    }

    @Test("forged or unverifiable tokens are UNAUTHORIZED with the right reason")
    func signatureMatrix() async throws {
        let setup = try await Setup()
        let f = setup.factory
        let claims = TokenFactory.claims()
        let valid = f.token(claims)
        let parts = valid.split(separator: ".").map(String.init)

        let noneHeader = b64(#"{"alg":"none","typ":"JWT"}"#.utf8)
        #expect(try setup.outcome(noneHeader + "." + parts[1] + ".") == "-32001 UNAUTHORIZED unsupported_alg")
        #expect(try setup.outcome(f.hmacWithPublicKey(claims)) == "-32001 UNAUTHORIZED unsupported_alg")
        let ps256 = b64(#"{"alg":"PS256","kid":"rsa-1"}"#.utf8)
        #expect(try setup.outcome(ps256 + "." + parts[1] + "." + parts[2]) == "-32001 UNAUTHORIZED unsupported_alg")

        var tampered = claims
        tampered["sub"] = "user_bob"
        let tamperedPayload = b64(JSONValue.object(tampered).jsonBytes)
        #expect(try setup.outcome(parts[0] + "." + tamperedPayload + "." + parts[2]) == "-32001 UNAUTHORIZED bad_signature")
        var signature = Array(Data(base64Encoded: parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "==")!)
        signature[10] ^= 1
        #expect(try setup.outcome(parts[0] + "." + parts[1] + "." + b64(signature)) == "-32001 UNAUTHORIZED bad_signature")
        // Signed by another key under a known kid.
        let impostor = TokenFactory.Key(kid: "rsa-1", signer: TokenFactory().rsa.signer)
        #expect(try setup.outcome(f.token(claims, key: impostor)) == "-32001 UNAUTHORIZED bad_signature")
        // An RS256 header naming the EC key: no key has that kid with that algorithm.
        #expect(try setup.outcome(f.token(claims, header: ["alg": "RS256", "kid": "ec-1"])) == "-32001 UNAUTHORIZED unknown_key")

        #expect(try setup.outcome(f.token(claims, header: ["alg": "RS256", "kid": "nope"])) == "-32001 UNAUTHORIZED unknown_key")
        // No kid: fine with exactly one key of the algorithm, refused with two (rsa-1 and rsa-noalg).
        #expect(try setup.outcome(f.token(claims, key: f.ec, header: ["alg": "ES256"])) == "ok:gho_alice")
        #expect(try setup.outcome(f.token(claims, header: ["alg": "RS256"])) == "-32001 UNAUTHORIZED unknown_key")

        for junk in ["", "abc", "a.b", "a.b.c.d", "!!.??.**", parts[0] + ".e30", "e30.e30.", "W10.e30.AA"] {
            #expect(try setup.outcome(junk.isEmpty ? nil : junk) == "-32001 UNAUTHORIZED malformed", "\(junk)")
        }
        #expect(try setup.outcome("") == "-32001 UNAUTHORIZED malformed")
    }

    @Test("a JWK without alg cannot be attacked with a PS256 header, before or after a valid token")
    func jwkWithoutAlgTrap() async throws {
        let setup = try await Setup()
        let f = setup.factory
        let claims = TokenFactory.claims()
        let forged = f.token(claims, key: f.rsaNoAlg, header: ["alg": "PS256", "kid": "rsa-noalg"])
        #expect(try setup.outcome(forged) == "-32001 UNAUTHORIZED unsupported_alg")
        #expect(try setup.outcome(f.token(TokenFactory.claims(), key: f.rsaNoAlg)) == "ok:gho_alice")
        #expect(try setup.outcome(forged) == "-32001 UNAUTHORIZED unsupported_alg")
        #expect(try setup.outcome(f.token(TokenFactory.claims(), key: f.rsaNoAlg)) == "ok:gho_alice")
    }

    @Test("time claims honour the leeway")
    func timeClaims() async throws {
        let setup = try await Setup()
        let f = setup.factory
        let now = TokenFactory.now
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["exp"] = .int(now - 100) })) == "-32001 UNAUTHORIZED expired")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["exp"] = .int(now - 10) })) == "ok:gho_alice")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["nbf"] = .int(now + 100) })) == "-32001 UNAUTHORIZED not_yet_valid")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["nbf"] = .int(now + 10) })) == "ok:gho_alice")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["iat"] = .int(now + 100) })) == "-32001 UNAUTHORIZED not_yet_valid")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["iat"] = .int(now + 10) })) == "ok:gho_alice")
    }

    @Test("issuer, developer and missing or mistyped claims")
    func claimMatrix() async throws {
        let setup = try await Setup()
        let f = setup.factory
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["iss"] = "https://evil.example" })) == "-32001 UNAUTHORIZED wrong_issuer")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["iss"] = nil })) == "-32001 UNAUTHORIZED wrong_issuer")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["dev"] = "dev_other" })) == "-32001 UNAUTHORIZED wrong_developer")
        let broken: [(String, JSONValue?)] = [
            ("sub", nil), ("sub", 5), ("agt", nil), ("agt", ["a"]), ("dev", nil), ("dev", true), ("scp", nil), ("scp", "github:read"),
            ("scp", [1]), ("jti", nil), ("jti", 7), ("iat", nil), ("iat", "now"), ("exp", nil), ("exp", "later"), ("nbf", "soon"),
        ]
        for (claim, value) in broken {
            let token = f.token(TokenFactory.claims { $0[claim] = value })
            #expect(try setup.outcome(token) == "-32001 UNAUTHORIZED missing_claims", "\(claim) = \(String(describing: value))")
        }
    }

    @Test("audience is required and matched when configured")
    func audience() async throws {
        let setup = try await Setup(extra: ["--audience", "vault-a"])
        let f = setup.factory
        #expect(try setup.outcome(f.token(TokenFactory.claims())) == "-32001 UNAUTHORIZED wrong_audience")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["aud"] = "vault-b" })) == "-32001 UNAUTHORIZED wrong_audience")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["aud"] = "vault-a" })) == "ok:gho_alice")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["aud"] = ["x", "vault-a"] })) == "ok:gho_alice")
    }

    @Test("every accepted scope form is accepted, case-insensitively, and nothing else")
    func scopes() async throws {
        let setup = try await Setup()
        let f = setup.factory
        for scope in ["*", "github:*", "github:read", "github:credentials:read", "vault:github:*", "vault:github:read", "vault:credentials:exchange", "GitHub:Read"] {
            #expect(try setup.outcome(f.token(TokenFactory.claims(scopes: ["other:thing", scope]))) == "ok:gho_alice", "\(scope)")
        }
        for scope in ["slack:read", "github:write", "vault:slack:*", "github", "read", "vault:*", "github:credentials:write", ""] {
            #expect(try setup.outcome(f.token(TokenFactory.claims(scopes: [scope]))) == "-32003 FORBIDDEN scope", "\(scope)")
        }
        let answer = try setup.exchange(f.token(TokenFactory.claims(scopes: ["slack:read"])))
        #expect(answer["error"]?.objectValue?["message"] == "Grant token is not scoped for github credential exchange")
    }

    @Test("the principal comes from the token: another principal's credential is not found")
    func principalFromToken() async throws {
        let setup = try await Setup()
        let f = setup.factory
        #expect(try setup.outcome(f.token(TokenFactory.claims(sub: "user_bob", scopes: ["*"])), service: "slack") == "ok:xoxb_bob")
        #expect(try setup.outcome(f.token(TokenFactory.claims(sub: "user_bob", scopes: ["*"])), service: "github") == "-32004 NOT_FOUND not_found")
        let answer = try setup.exchange(f.token(TokenFactory.claims(sub: "user_bob", scopes: ["*"])), service: "github")
        #expect(answer["error"]?.objectValue?["message"] == "No credential found for this principal and service")
        #expect(try setup.outcome(f.token(TokenFactory.claims(scopes: ["*"])), service: "SLACK") == "ok:xoxb_alice")
    }

    @Test("the check order: token errors before service errors, service before scope")
    func checkOrder() async throws {
        let setup = try await Setup()
        let f = setup.factory
        #expect(try setup.outcome("garbage", service: "not a service") == "-32001 UNAUTHORIZED malformed")
        #expect(try setup.outcome(f.token(TokenFactory.claims { $0["exp"] = .int(TokenFactory.now - 1000) }), service: nil) == "-32001 UNAUTHORIZED expired")
        #expect(try setup.outcome(f.token(TokenFactory.claims(scopes: ["slack:read"])), service: "not a service") == "-32602 BAD_REQUEST bad_request")
        #expect(try setup.outcome(f.token(TokenFactory.claims()), service: nil) == "-32602 BAD_REQUEST bad_request")
        let unknownParam = try setup.connection.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.exchange","params":{"grantToken":"x","service":"github","principalId":"user_bob"}}"#)
        #expect(unknownParam.errorCode == "BAD_REQUEST")
    }

    @Test("revoked token ids and grants are refused, also after a restart")
    func revocation() async throws {
        let setup = try await Setup()
        let f = setup.factory
        let byJti = TokenFactory.claims()
        let byGrant = TokenFactory.claims()
        let tokenA = f.token(byJti)
        let tokenB = f.token(byGrant)
        let sameGrant = f.token(TokenFactory.claims { $0["grnt"] = byGrant["grnt"] })
        let noGrant = TokenFactory.claims { $0["grnt"] = nil }
        #expect(try setup.outcome(tokenA) == "ok:gho_alice")  // cached now: revocation must still win
        #expect(try setup.connection.call(#"{"jsonrpc":"2.0","id":1,"method":"grants.revoke","params":{"jti":"\#(byJti["jti"]!.stringValue!)"}}"#).result?["revoked"] == true)
        #expect(try setup.connection.call(#"{"jsonrpc":"2.0","id":2,"method":"grants.revoke","params":{"grantId":"\#(byGrant["grnt"]!.stringValue!)","expiresAt":"2099-01-01T00:00:00Z"}}"#).result?["revoked"] == true)
        // grnt defaults to jti: revoking the jti as a grant id covers a token without grnt.
        #expect(try setup.connection.call(#"{"jsonrpc":"2.0","id":3,"method":"grants.revoke","params":{"grantId":"\#(noGrant["jti"]!.stringValue!)"}}"#).result != nil)
        #expect(try setup.outcome(tokenA) == "-32001 UNAUTHORIZED revoked")
        #expect(try setup.outcome(tokenB) == "-32001 UNAUTHORIZED revoked")
        #expect(try setup.outcome(sameGrant) == "-32001 UNAUTHORIZED revoked")
        #expect(try setup.outcome(f.token(noGrant)) == "-32001 UNAUTHORIZED revoked")
        #expect(try setup.outcome(f.token(TokenFactory.claims())) == "ok:gho_alice")

        let listed = try setup.connection.call(#"{"jsonrpc":"2.0","id":4,"method":"grants.listRevoked"}"#)
        let revoked = try #require(listed.result?["revoked"]?.arrayValue)
        #expect(revoked.count == 3)
        #expect(revoked.contains { $0.objectValue?["jti"] == byJti["jti"] && $0.objectValue?["revokedAt"]?.stringValue?.hasSuffix("Z") == true })
        #expect(revoked.contains { $0.objectValue?["grantId"] == byGrant["grnt"] })

        for bad in [#"{}"#, #"{"jti":"a","grantId":"b"}"#, #"{"jti":""}"#, #"{"jti":"a","expiresAt":"never"}"#, #"{"jti":5}"#] {
            #expect(try setup.connection.call(#"{"jsonrpc":"2.0","id":5,"method":"grants.revoke","params":\#(bad)}"#).errorCode == "BAD_REQUEST", "\(bad)")
        }

        try await setup.daemon.stop()
        try await setup.daemon.start()
        let restarted = try RawConnection(setup.daemon.socketPath)
        func outcome(_ token: String) throws -> String? {
            let answer = try restarted.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.exchange","params":{"grantToken":"\#(token)","service":"github"}}"#)
            return answer.result != nil ? "ok" : answer["error"]?.objectValue?["data"]?.objectValue?["reason"]?.stringValue
        }
        #expect(try outcome(tokenA) == "revoked")
        #expect(try outcome(sameGrant) == "revoked")
        #expect(try outcome(f.token(TokenFactory.claims())) == "ok")
        #expect(try restarted.call(#"{"jsonrpc":"2.0","id":6,"method":"system.status"}"#).result?["revokedCount"] == 3)
    }

    @Test("a peer of any uid may exchange; grants.* stay admin-only")
    func anyPeerMayExchange() async throws {
        let factory = TokenFactory()
        let daemon = try await Daemon.started(arguments: ["--socket-mode", "0666"], scratchMode: 0o755)
        try factory.writeJWKS(to: daemon.scratch.file("jwks.json"))
        try await daemon.stop()
        daemon.extraArgumentsOverride = ["--jwks", daemon.scratch.file("jwks.json"), "--developer-id", TokenFactory.developer, "--socket-mode", "0666"]
        try await daemon.start()
        _ = try await cli(["store", "--principal-id", "user_alice", "--service", "github"], socket: daemon.socketPath, stdin: "gho_nobody_can_have")
        let token = factory.token(TokenFactory.claims())
        let exchanged = try await cli(["exchange", "--service", "github"], socket: daemon.socketPath, environment: ["GRANTEX_GRANT_TOKEN": token], asNobody: true)
        #expect(exchanged.status == 0, "\(exchanged.stderr)")
        #expect(exchanged.stdout == "gho_nobody_can_have\n")
        let fromStdin = try await cli(["exchange", "--service", "github", "--json"], socket: daemon.socketPath, stdin: token + "\n", asNobody: true)
        #expect(fromStdin.stdout.contains(#""accessToken":"gho_nobody_can_have""#))
        let revoke = try await cli(["revoke", "--jti", "x"], socket: daemon.socketPath, asNobody: true)
        #expect(revoke.status == 1 && revoke.stderr.contains("FORBIDDEN"))
        let refused = try await cli(["exchange", "--service", "github", "--grant-token", "bad"], socket: daemon.socketPath, asNobody: true)
        #expect(refused.status == 1)
        #expect(refused.stderr == "grantex-vault: error: Grant token is malformed: not a compact JWS (three base64url parts) (UNAUTHORIZED)\n")
    }

    @Test("failed exchanges are rate limited per uid; a valid exchange is never limited")
    func rateLimit() async throws {
        let setup = try await Setup(extra: ["--exchange-failure-burst", "3", "--exchange-failure-rate", "0.5"])
        let f = setup.factory
        for _ in 0..<3 { #expect(try setup.outcome("bad") == "-32001 UNAUTHORIZED malformed") }
        let limited = try setup.exchange("bad")
        #expect(limited.errorCode == "RATE_LIMITED")
        #expect(limited.errorRPCCode == -32029)
        let retry = try #require(limited["error"]?.objectValue?["data"]?.objectValue?["retryAfterMs"]?.int64Value)
        #expect(retry > 0 && retry <= 2000)
        #expect(try setup.outcome(f.token(TokenFactory.claims())) == "ok:gho_alice")
        #expect(try setup.exchange(f.token(TokenFactory.claims { $0["dev"] = "x" })).errorCode == "RATE_LIMITED")
    }

    @Test("a repeated token is served from the verified-token cache")
    func cache() async throws {
        let setup = try await Setup()
        let token = setup.factory.token(TokenFactory.claims())
        func stats() throws -> JSONObject { try #require(try setup.connection.call(#"{"jsonrpc":"2.0","id":9,"method":"system.status"}"#).result?["tokenCache"]?.objectValue) }
        let before = try stats()
        for _ in 0..<5 { #expect(try setup.outcome(token) == "ok:gho_alice") }
        let after = try stats()
        #expect((after["hits"]?.int64Value ?? 0) - (before["hits"]?.int64Value ?? 0) == 4)
        #expect((after["misses"]?.int64Value ?? 0) - (before["misses"]?.int64Value ?? 0) == 1)
    }

    @Test("SIGHUP reloads the JWKS; a broken file keeps the old keys")
    func reload() async throws {
        let setup = try await Setup()
        let f = setup.factory
        let fresh = TokenFactory()
        let jwksPath = setup.daemon.scratch.file("jwks.json")
        let oldToken = f.token(TokenFactory.claims())
        #expect(try setup.outcome(oldToken) == "ok:gho_alice")
        try fresh.writeJWKS(to: jwksPath, keys: [fresh.ec])
        try setup.daemon.signal(SIGHUP)
        try await waitFor { try setup.outcome(fresh.token(TokenFactory.claims(), key: fresh.ec)) == "ok:gho_alice" }
        #expect(try setup.outcome(oldToken) == "-32001 UNAUTHORIZED unknown_key")
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: jwksPath))
        try setup.daemon.signal(SIGHUP)
        try await waitFor { setup.daemon.log.contains("reload failed") }
        #expect(try setup.outcome(fresh.token(TokenFactory.claims(), key: fresh.ec)) == "ok:gho_alice")
    }

    @Test("every exchange is audited, never with a token, and audit verify passes")
    func audited() async throws {
        let setup = try await Setup()
        let f = setup.factory
        let token = f.token(TokenFactory.claims())
        #expect(try setup.outcome(token) == "ok:gho_alice")
        #expect(try setup.outcome(f.token(TokenFactory.claims(scopes: ["slack:read"]))) == "-32003 FORBIDDEN scope")
        #expect(try setup.outcome("junk") == "-32001 UNAUTHORIZED malformed")
        try await setup.daemon.stop()
        let local = ["--state-dir", setup.daemon.stateDirectory, "--key-file", setup.daemon.keyFile]
        let verify = try await run(Binaries.cli, ["audit", "verify"] + local)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.contains("audit log OK: 6 entries"))  // 3 stores + 3 exchanges
        let shown = try await run(Binaries.cli, ["audit", "show", "--json", "--method", "vault.exchange"] + local)
        let lines = shown.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].contains(#""outcome":"allowed""#) && lines[0].contains(#""sub":"user_alice""#) && lines[0].contains(#""agt":"agent_1""#))
        #expect(lines[1].contains(#""reason":"scope""#))
        #expect(lines[2].contains(#""reason":"malformed""#))
        let refused = try await run(Binaries.cli, ["audit", "show", "--outcome", "refused", "--service", "GITHUB"] + local)
        // Header + both refusals: the requested service is audited whichever step refused.
        #expect(refused.stdout.split(separator: "\n").count == 3)
        let auditBytes = try Data(contentsOf: URL(fileURLWithPath: setup.daemon.stateDirectory + "/audit.log"))
        for needle in ["gho_alice", "user_alice", token] {
            #expect(!Array(auditBytes).contains(subsequence: Array(needle.utf8)))
        }
        #expect(!setup.daemon.log.contains("gho_alice"))
        #expect(!setup.daemon.log.contains(String(token.prefix(40))))

        // `audit verify` itself fails on an edited log, naming the file and offset.
        var edited = Array(auditBytes)
        edited[edited.count - 100] ^= 0x01
        let damagedDirectory = Scratch()
        try Data(edited).write(to: URL(fileURLWithPath: damagedDirectory.file("audit.log")))
        let failed = try await run(Binaries.cli, ["audit", "verify", "--state-dir", damagedDirectory.path, "--key-file", setup.daemon.keyFile])
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("audit.log") && failed.stderr.contains("offset"))
    }
}

func waitFor(_ condition: () throws -> Bool, timeout: TimeInterval = 10) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw HarnessError(description: "condition not met within \(timeout)s")
}
