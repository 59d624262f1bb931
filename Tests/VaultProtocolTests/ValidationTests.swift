import Testing
import VaultProtocol

@Suite("Params validation")
struct ValidationTests {
    private func storeParams(_ extra: JSONObject = [:]) -> JSONObject {
        var params: JSONObject = ["principalId": "alice", "service": "GitHub", "accessToken": "gho_x"]
        for (key, value) in extra { params[key] = value }
        return params
    }

    @Test("service names fold to lower case and follow the pattern")
    func serviceNames() throws {
        #expect(try Validation.service("GitHub") == "github")
        #expect(try Validation.service("a") == "a")
        #expect(try Validation.service("slack.bot_v2-x") == "slack.bot_v2-x")
        #expect(try Validation.service("0" + String(repeating: "a", count: 63)).count == 64)
        for bad in ["", ".github", "-x", "git hub", "git/hub", "gïthub", "\u{212A}elvin", String(repeating: "a", count: 65)] {
            #expect(throws: VaultError.self) { try Validation.service(bad) }
        }
    }

    @Test("store params: defaults, normalisation and every field's rule")
    func storeParamsRules() throws {
        let params = try StoreCredentialParams(validating: storeParams(["tokenExpiresAt": "2026-11-29T13:16:43+01:00"]))
        #expect(params.service == "github")
        #expect(params.credentialType == "oauth2")
        #expect(params.tokenExpiresAt == "2026-11-29T12:16:43.000Z")

        func code(_ extra: JSONObject, removing: String? = nil) -> String? {
            var p = storeParams(extra)
            if let removing { p[removing] = nil }
            do {
                _ = try StoreCredentialParams(validating: p)
                return nil
            } catch {
                return error.code.name
            }
        }
        #expect(code([:], removing: "accessToken") == "BAD_REQUEST")
        #expect(code([:], removing: "principalId") == "BAD_REQUEST")
        #expect(code(["accessToken": ""]) == "BAD_REQUEST")
        #expect(code(["accessToken": .string(String(repeating: "x", count: 16_384))]) == nil)
        #expect(code(["accessToken": .string(String(repeating: "x", count: 16_385))]) == "PAYLOAD_TOO_LARGE")
        #expect(code(["refreshToken": .string(String(repeating: "x", count: 16_385))]) == "PAYLOAD_TOO_LARGE")
        #expect(code(["principalId": .string(String(repeating: "p", count: 256))]) == nil)
        #expect(code(["principalId": .string(String(repeating: "p", count: 257))]) == "BAD_REQUEST")
        #expect(code(["principalId": ""]) == "BAD_REQUEST")
        #expect(code(["credentialType": .string(String(repeating: "t", count: 65))]) == "BAD_REQUEST")
        #expect(code(["metadata": .array([])]) == "BAD_REQUEST")
        #expect(code(["metadata": "str"]) == "BAD_REQUEST")
        #expect(code(["metadata": .object(["k": .string(String(repeating: "v", count: 16_400))])]) == "PAYLOAD_TOO_LARGE")
        #expect(code(["tokenExpiresAt": "next week"]) == "BAD_REQUEST")
        #expect(code(["tokenExpiresAt": 1_764_418_603]) == "BAD_REQUEST")
        #expect(code(["accessToken": 5]) == "BAD_REQUEST")
        #expect(code(["unknown": 1]) == "BAD_REQUEST")
        #expect(code(["service": "bad service"]) == "BAD_REQUEST")
    }

    @Test("list params: limit range and types")
    func listParams() throws {
        #expect(try ListVaultCredentialsParams(validating: nil).limit == nil)
        #expect(try ListVaultCredentialsParams(validating: ["limit": 1000]).limit == 1000)
        #expect(try ListVaultCredentialsParams(validating: ["service": "GitHub"]).service == "github")
        for bad: JSONValue in [0, 1001, -1, 1.5, "10"] {
            #expect(throws: VaultError.self) { try ListVaultCredentialsParams(validating: ["limit": bad]) }
        }
        #expect(throws: VaultError.self) { try ListVaultCredentialsParams(validating: ["page": 1]) }
    }
}

@Suite("JSON-RPC envelope")
struct EnvelopeTests {
    private func parse(_ text: String) throws -> Result<RPCRequest, RPCFailure> {
        RPCRequest.parse(try JSONParser.parse(text))
    }

    @Test("accepts requests and notifications")
    func accepts() throws {
        let request = try parse(#"{"jsonrpc":"2.0","id":"a","method":"vault.get","params":{"id":"x"}}"#).get()
        #expect(request.id == .string("a"))
        #expect(!request.isNotification)
        let notification = try parse(#"{"jsonrpc":"2.0","method":"system.health"}"#).get()
        #expect(notification.isNotification)
        let nullId = try parse(#"{"jsonrpc":"2.0","id":null,"method":"system.health"}"#).get()
        #expect(nullId.id == .null)
    }

    @Test(
        "refuses malformed envelopes with the right code",
        arguments: [
            (#"{"id":1,"method":"m"}"#, "INVALID_REQUEST"),
            (#"{"jsonrpc":"1.0","id":1,"method":"m"}"#, "INVALID_REQUEST"),
            (#"{"jsonrpc":"2.0","id":1,"method":5}"#, "INVALID_REQUEST"),
            (#"{"jsonrpc":"2.0","id":{},"method":"m"}"#, "INVALID_REQUEST"),
            (#"{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}"#, "INVALID_REQUEST"),
            (#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#, "BAD_REQUEST"),
            (#"{"jsonrpc":"2.0","id":1,"method":"m","extra":true}"#, "INVALID_REQUEST"),
            ("5", "INVALID_REQUEST"),
        ])
    func refuses(_ text: String, _ code: String) throws {
        guard case .failure(let failure) = try parse(text) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(failure.error.code.name == code)
    }

    @Test("keeps the request id on an invalid request when the id itself is valid")
    func keepsId() throws {
        guard case .failure(let failure) = try parse(#"{"jsonrpc":"2.0","id":9,"method":5}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(failure.id == .int(9))
    }

    @Test("error responses carry data.code and data.requestId")
    func errorShape() throws {
        let response = RPCResponse.failure(id: .int(7), error: VaultError(.notFound, "Credential not found"), requestId: "req_1")
        #expect(response.jsonString == #"{"jsonrpc":"2.0","id":7,"error":{"code":-32004,"message":"Credential not found","data":{"code":"NOT_FOUND","requestId":"req_1"}}}"#)
        let parsed = try RPCResponse.parse(response)
        guard case .failure(let error) = parsed.result else {
            Issue.record("parsed as success")
            return
        }
        #expect(error.code == .notFound)
        #expect(error.requestId == "req_1")
    }
}
