import Foundation
import GrantexVault
import Testing

/// Hostile clients: the daemon keeps answering health, and its memory stays bounded.
@Suite("Connection abuse")
struct AbuseTests {
    private func rssKilobytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    @Test("1,000 concurrent connections, slow senders, oversize lines, deep nesting, huge numbers, invalid UTF-8")
    func hostileClients() async throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 {
            limit.rlim_cur = min(4096, limit.rlim_max)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let daemon = try await Daemon.started(arguments: ["--idle-timeout", "30", "--log-level", "info"])
        let pid = try #require(daemon.pid)
        func healthy() throws -> Bool {
            try RawConnection(daemon.socketPath).call(#"{"jsonrpc":"2.0","id":"h","method":"system.health"}"#).result?["status"] == "ok"
        }

        // 1,000 connections open at once, each half-way through a line.
        var held: [RawConnection] = []
        for index in 0..<1000 {
            let connection = try RawConnection(daemon.socketPath)
            try connection.send(#"{"jsonrpc":"2.0","id":\#(index),"#)
            held.append(connection)
        }
        #expect(try healthy(), "no health answer with 1,000 connections held")
        // Every held connection still works when it finishes its line.
        for (index, connection) in held.enumerated() where index % 50 == 0 {
            try connection.send(#""method":"system.health"}"# + "\n")
            #expect(try connection.readJSON()["id"] == .int(index))
        }

        // Hostile lines, each on its own connection.
        let deep = String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000)
        let cases: [([UInt8], String)] = [
            (Array(deep.utf8) + [0x0A], "PAYLOAD_TOO_LARGE"),
            (Array((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n").utf8), "PARSE_ERROR"),
            (Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.list","params":{"limit":1\#(String(repeating: "0", count: 20000))}}"#.utf8) + [0x0A], "BAD_REQUEST"),
            (Array(#"{"jsonrpc":"2.0","id":1e999999,"method":"system.health"}"#.utf8) + [0x0A], ""),
            (Array(#"{"jsonrpc":"2.0","id":1,"method":"sys"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8) + [0x0A], "PARSE_ERROR"),
            ([0xFF, 0xFE, 0x00, 0x01, 0x0A], "PARSE_ERROR"),
            (Array(String(repeating: "x", count: 200_000).utf8), "PAYLOAD_TOO_LARGE"),
        ]
        for (bytes, expected) in cases {
            let connection = try RawConnection(daemon.socketPath)
            try? connection.send(bytes)
            let answer = try connection.readJSON()
            if expected.isEmpty {
                #expect(answer.result?["status"] == "ok" || answer.errorCode != nil)
            } else {
                #expect(answer.errorCode == expected, "\(bytes.prefix(40)) -> \(answer)")
            }
            #expect(try healthy())
        }

        // A slow sender: one byte every 100 ms does not stop anyone else.
        let slow = try RawConnection(daemon.socketPath)
        for byte in Array(#"{"jsonrpc":"2.0","id":"slow","method":"system.health"}"#.utf8).prefix(10) {
            try slow.send([byte])
            #expect(try healthy())
            try await Task.sleep(for: .milliseconds(100))
        }

        held.removeAll()
        #expect(try healthy())
        let peak = try #require(rssKilobytes(pid))
        print("abuse test: daemon peak RSS \(peak / 1024) MB with 1,000 connections held")
        #expect(peak < 200 * 1024, "peak RSS \(peak / 1024) MB")
    }
}
