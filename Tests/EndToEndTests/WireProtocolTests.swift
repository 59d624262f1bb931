import Foundation
import GrantexVault
import Testing

/// PROTOCOL.md, byte by byte, over a raw socket.
@Suite("Wire protocol")
struct WireProtocolTests {
    @Test("every error carries data.code and data.requestId, and the log line has the same request id")
    func errorShape() async throws {
        let daemon = try await Daemon.started()
        let connection = try RawConnection(daemon.socketPath)
        let cases: [(String, Int64, String)] = [
            ("{not json", -32700, "PARSE_ERROR"),
            (#"{"jsonrpc":"2.0","id":1}"#, -32600, "INVALID_REQUEST"),
            (#"{"jsonrpc":"2.0","id":2,"method":"vault.nope"}"#, -32601, "METHOD_NOT_FOUND"),
            (#"{"jsonrpc":"2.0","id":3,"method":"vault.get","params":["x"]}"#, -32602, "BAD_REQUEST"),
            (#"{"jsonrpc":"2.0","id":4,"method":"vault.get","params":{"id":"vault_01ARZ3NDEKTSV4RRFFQ69G5FAV","x":1}}"#, -32602, "BAD_REQUEST"),
            (#"{"jsonrpc":"2.0","id":5,"method":"vault.get","params":{"id":"vault_01ARZ3NDEKTSV4RRFFQ69G5FAV"}}"#, -32004, "NOT_FOUND"),
            (#"{"jsonrpc":"2.0","id":6,"method":"vault.store","params":{"principalId":"a","service":"b","accessToken":"c","metadata":[1]}}"#, -32602, "BAD_REQUEST"),
            (#"{"jsonrpc":"2.0","id":7,"method":"vault.store","params":{"principalId":"a","service":"b","accessToken":"c","tokenExpiresAt":"soon"}}"#, -32602, "BAD_REQUEST"),
            (#"{"jsonrpc":"2.0","id":8,"method":"vault.list","params":{"limit":0}}"#, -32602, "BAD_REQUEST"),
            (#"{"jsonrpc":"2.0","id":9,"method":"vault.store"}"#, -32602, "BAD_REQUEST"),
        ]
        var requestIds: [String] = []
        for (request, rpcCode, code) in cases {
            let answer = try connection.call(request)
            #expect(answer.errorRPCCode == rpcCode, "\(request)")
            #expect(answer.errorCode == code, "\(request)")
            let requestId = try #require(answer.requestId)
            #expect(requestId.hasPrefix("req_") && requestId.count == 30)
            requestIds.append(requestId)
        }
        #expect(try connection.call("{not json")["id"] == .null)
        #expect(try connection.call(#"{"jsonrpc":"2.0","id":"abc","method":"vault.nope"}"#)["id"] == "abc")
        let log = daemon.log
        for requestId in requestIds { #expect(log.contains(requestId), "no log line for \(requestId)") }
        #expect(Set(requestIds).count == requestIds.count)
    }

    @Test("pipelined requests are answered in order, and a read sees the writes sent before it")
    func pipelining() async throws {
        let daemon = try await Daemon.started()
        let connection = try RawConnection(daemon.socketPath)
        var burst = ""
        for index in 0..<50 {
            burst += #"{"jsonrpc":"2.0","id":\#(index),"method":"vault.store","params":{"principalId":"p\#(index)","service":"svc","accessToken":"t"}}"# + "\n"
        }
        burst += #"{"jsonrpc":"2.0","id":"list","method":"vault.list","params":{"limit":1000}}"# + "\r\n"
        burst += #"{"jsonrpc":"2.0","id":"health","method":"system.health"}"# + "\n"
        try connection.send(burst)
        for index in 0..<50 {
            let answer = try connection.readJSON()
            #expect(answer["id"] == .int(index))
            #expect(answer.result?["principalId"] == .string("p\(index)"))
        }
        let list = try connection.readJSON()
        #expect(list["id"] == "list")
        #expect(list.result?["credentials"]?.arrayValue?.count == 50)
        #expect(try connection.readJSON()["id"] == "health")
    }

    @Test("batches: answers in an array without the notifications; empty batch is invalid; all-notification batch gets nothing")
    func batches() async throws {
        let daemon = try await Daemon.started()
        let connection = try RawConnection(daemon.socketPath)
        try connection.send(
            #"[{"jsonrpc":"2.0","id":1,"method":"system.health"},{"jsonrpc":"2.0","method":"system.health"},{"jsonrpc":"2.0","id":2,"method":"nope"},5]"# + "\n")
        let line = try #require(try connection.readLine())
        let answers = try #require(try JSONParser.parse(line).arrayValue)
        #expect(answers.count == 3)
        #expect(answers[0].objectValue?["id"] == 1)
        #expect(answers[1].objectValue?.errorCode == "METHOD_NOT_FOUND")
        #expect(answers[2].objectValue?.errorCode == "INVALID_REQUEST")
        #expect(answers[2].objectValue?["id"] == .null)

        let empty = try connection.call("[]")
        #expect(empty.errorCode == "INVALID_REQUEST")
        #expect(empty["id"] == .null)

        try connection.send(#"[{"jsonrpc":"2.0","method":"system.health"},{"jsonrpc":"2.0","method":"system.health"}]"# + "\n")
        try connection.send(#"{"jsonrpc":"2.0","method":"vault.store","params":{"principalId":"n","service":"notified","accessToken":"t"}}"# + "\n")
        // The next line must be the answer to this request: the notifications above got none.
        #expect(try connection.call(#"{"jsonrpc":"2.0","id":"after","method":"vault.list","params":{"service":"notified"}}"#)["id"] == "after")
    }

    @Test("a notification is executed but never answered")
    func notificationExecuted() async throws {
        let daemon = try await Daemon.started()
        let connection = try RawConnection(daemon.socketPath)
        try connection.send(#"{"jsonrpc":"2.0","method":"vault.store","params":{"principalId":"quiet","service":"svc","accessToken":"t"}}"# + "\n")
        let answer = try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.list","params":{"principalId":"quiet"}}"#)
        #expect(answer["id"] == 1)
        #expect(answer.result?["credentials"]?.arrayValue?.count == 1)
    }

    @Test("a line over the limit is answered PAYLOAD_TOO_LARGE with id null and the connection closed")
    func oversizeLine() async throws {
        let daemon = try await Daemon.started(arguments: ["--max-line-bytes", "4096"])
        let connection = try RawConnection(daemon.socketPath)
        #expect(try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"system.health"}"#)["id"] == 1)
        let padding = String(repeating: "x", count: 5000)
        try connection.send(#"{"jsonrpc":"2.0","id":2,"method":"system.health","params":{"pad":"\#(padding)"}}"# + "\n")
        let answer = try connection.readJSON()
        #expect(answer.errorRPCCode == -32013)
        #expect(answer.errorCode == "PAYLOAD_TOO_LARGE")
        #expect(answer["id"] == .null)
        #expect(connection.closesWithin(5))

        // Without a newline at all: refused as soon as the limit is passed, not when the line ends.
        let endless = try RawConnection(daemon.socketPath)
        try endless.send(String(repeating: "y", count: 8192))
        #expect(try endless.readJSON().errorCode == "PAYLOAD_TOO_LARGE")
        #expect(endless.closesWithin(5))
        // The daemon is unharmed.
        #expect(try RawConnection(daemon.socketPath).call(#"{"jsonrpc":"2.0","id":3,"method":"system.health"}"#).result?["status"] == "ok")
    }

    @Test("an idle connection is closed, and so is one that trickles an unfinished line")
    func idleTimeout() async throws {
        let daemon = try await Daemon.started(arguments: ["--idle-timeout", "2"])
        let idle = try RawConnection(daemon.socketPath)
        #expect(idle.closesWithin(10))

        let trickle = try RawConnection(daemon.socketPath)
        var closed = false
        for byte in #"{"jsonrpc":"2.0","id":1,"#.utf8 {
            if (try? trickle.send([byte])) == nil {
                closed = true
                break
            }
            if trickle.closesWithin(0.25) {
                closed = true
                break
            }
        }
        #expect(closed, "a connection sending one byte every 250 ms outlived a 2 s idle timeout")

        let busy = try RawConnection(daemon.socketPath)
        for _ in 0..<10 {
            #expect(try busy.call(#"{"jsonrpc":"2.0","id":1,"method":"system.health"}"#)["id"] == 1)
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test("unknown params, wrong types and missing params are BAD_REQUEST and change nothing")
    func badInputChangesNothing() async throws {
        let daemon = try await Daemon.started()
        let connection = try RawConnection(daemon.socketPath)
        let bad = [
            #"{"principalId":"a","service":"b","accessToken":"c","extra":1}"#,
            #"{"principalId":"a","service":"bad service","accessToken":"c"}"#,
            #"{"principalId":"","service":"b","accessToken":"c"}"#,
            #"{"principalId":"a","service":"b","accessToken":""}"#,
            #"{"principalId":"a","service":"b","accessToken":"c","credentialType":5}"#,
            #"{"principalId":"a","service":"b","accessToken":"c","metadata":"str"}"#,
        ]
        for params in bad {
            let answer = try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":\#(params)}"#)
            #expect(answer.errorCode == "BAD_REQUEST", "\(params)")
        }
        let large = String(repeating: "t", count: 16_385)
        let tooLarge = try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":{"principalId":"a","service":"b","accessToken":"\#(large)"}}"#)
        #expect(tooLarge.errorCode == "PAYLOAD_TOO_LARGE")
        let count = try connection.call(#"{"jsonrpc":"2.0","id":2,"method":"system.status"}"#).result?["credentialCount"]
        #expect(count == 0)
    }
}
