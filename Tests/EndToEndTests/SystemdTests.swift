import Foundation
import GrantexVault
import Testing

/// A datagram socket standing in for systemd's notification socket.
final class NotifyListener {
    let fd: Int32
    /// The value for `$NOTIFY_SOCKET`.
    let address: String

    init(path: String?) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes: [UInt8]
        if let path {
            bytes = Array(path.utf8)
            address = path
        } else {
            let name = "gxv-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            bytes = [0] + Array(name.utf8)
            address = "@" + name
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (path == nil ? 0 : 1))
        let result = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard result == 0 else { throw HarnessError(description: "bind notify socket: \(String(cString: strerror(errno)))") }
    }

    /// The next datagram, or nil after `timeout` seconds.
    func next(timeout: TimeInterval = 10) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }

    /// Datagrams until one contains `needle` (all of them returned), or nil on timeout.
    func until(_ needle: String, timeout: TimeInterval = 10) -> [String]? {
        var seen: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, let message = next(timeout: deadline.timeIntervalSinceNow) {
            seen.append(message)
            if message.contains(needle) { return seen }
        }
        return nil
    }

    deinit { close(fd) }
}

@Suite("systemd integration and operations")
struct SystemdTests {
    @Test("sd_notify: READY once the socket accepts, RELOADING/READY around SIGHUP, STOPPING on SIGTERM", arguments: [false, true])
    func notify(abstract: Bool) async throws {
        let scratch = Scratch()
        let listener = try NotifyListener(path: abstract ? nil : scratch.file("notify"))
        let daemon = try await Daemon.started(environment: ["NOTIFY_SOCKET": listener.address])
        let ready = try #require(listener.until("READY=1"))
        #expect(ready.last?.contains("STATUS=Serving 0 credentials") == true)
        #expect(RawConnection.canConnect(daemon.socketPath))
        try daemon.signal(SIGHUP)
        let reload = try #require(listener.until("READY=1"))
        let reloading = try #require(reload.first { $0.contains("RELOADING=1") })
        #expect(reloading.contains("MONOTONIC_USEC="))
        #expect(try await daemon.stop() == 0)
        #expect(listener.until("STOPPING=1", timeout: 5) != nil)
    }

    @Test("WATCHDOG=1 is sent when systemd asks for it")
    func watchdog() async throws {
        let scratch = Scratch()
        let listener = try NotifyListener(path: scratch.file("notify"))
        let daemon = try await Daemon.started(environment: ["NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"])
        #expect(listener.until("WATCHDOG=1") != nil)
        #expect(listener.until("WATCHDOG=1") != nil)
        try await daemon.stop()
    }

    @Test("socket activation: serves the inherited socket, ignores --socket, leaves the socket file to systemd")
    func socketActivation() async throws {
        let scratch = Scratch()
        let key = scratch.file("vault.key")
        #expect(try await run(Binaries.cli, ["keygen", key]).status == 0)
        let socketPath = scratch.file("activated.sock")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        process.arguments = [
            "-l", socketPath, Binaries.daemon, "--state-dir", scratch.file("state"), "--key-file", key, "--socket", scratch.file("ignored.sock"),
        ]
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        try await waitFor { FileManager.default.fileExists(atPath: socketPath) }
        // The first connection starts the daemon, which must answer it on the inherited socket.
        let connection = try RawConnection(socketPath)
        #expect(try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"system.health"}"#).result?["status"] == "ok")
        #expect(!FileManager.default.fileExists(atPath: scratch.file("ignored.sock")))
        kill(process.processIdentifier, SIGTERM)
        try await waitFor { !process.isRunning }
        #expect(process.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: socketPath))
    }

    @Test("LISTEN_FDS naming something that is not a listening Unix socket is a startup error")
    func badActivation() async throws {
        let scratch = Scratch()
        let key = scratch.file("vault.key")
        #expect(try await run(Binaries.cli, ["keygen", key]).status == 0)
        // fd 3 of a shell with 3< a regular file, LISTEN_PID set to the exec'd daemon's pid ($$ after exec).
        try "x".write(toFile: scratch.file("plain"), atomically: true, encoding: .utf8)
        let script = "exec 3<\(scratch.file("plain")); LISTEN_FDS=1 LISTEN_PID=$$ exec \(Binaries.daemon) --state-dir \(scratch.file("state")) --key-file \(key) --socket \(scratch.file("s.sock"))"
        let result = try await run("/bin/sh", ["-c", script])
        #expect(result.status != 0)
        #expect(result.stderr.contains("not a listening Unix stream socket"))
    }

    @Test("--log-format json writes one JSON object per line with request ids, never a secret")
    func jsonLogs() async throws {
        let daemon = try await Daemon.started(arguments: ["--log-format", "json"])
        _ = try await cli(["store", "--principal-id", "p", "--service", "s"], socket: daemon.socketPath, stdin: "secret-token-json-test")
        let missing = try await cli(["get", "vault_01ARZ3NDEKTSV4RRFFQ69G5FAV"], socket: daemon.socketPath)
        #expect(missing.status == 1)
        try await daemon.stop()
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.count >= 3)
        for line in lines {
            let object = try #require(try JSONParser.parse(String(line)).objectValue, "\(line)")
            #expect(object["time"]?.stringValue?.hasSuffix("Z") == true)
            #expect(object["level"] != nil && object["message"] != nil)
        }
        #expect(lines.contains { $0.contains(#""code":"NOT_FOUND""#) && $0.contains(#""requestId":"req_"#) && $0.contains(#""uid":"0""#) })
        #expect(!daemon.log.contains("secret-token-json-test"))
    }

    @Test("system.metrics: Prometheus text with requests by method and outcome, latencies, counts and cache hits")
    func metrics() async throws {
        let daemon = try await Daemon.started()
        _ = try await cli(["store", "--principal-id", "p", "--service", "s"], socket: daemon.socketPath, stdin: "t")
        _ = try await cli(["get", "vault_01ARZ3NDEKTSV4RRFFQ69G5FAV"], socket: daemon.socketPath)
        _ = try await cli(["exchange", "--service", "s", "--grant-token", "bad"], socket: daemon.socketPath)
        let text = try await cli(["metrics"], socket: daemon.socketPath)
        #expect(text.status == 0)
        for line in [
            #"grantex_vault_requests_total{method="vault.store",outcome="OK"} 1"#,
            #"grantex_vault_requests_total{method="vault.get",outcome="NOT_FOUND"} 1"#,
            #"grantex_vault_requests_total{method="vault.exchange",outcome="UNAUTHORIZED"} 1"#,
            "grantex_vault_credentials 1", "grantex_vault_exchange_duration_seconds_count 1",
            "grantex_vault_store_fsync_duration_seconds_count 1", "grantex_vault_token_cache_misses_total 1",
        ] {
            #expect(text.stdout.contains(line), "missing: \(line)")
        }
        #expect(text.stdout.contains("# TYPE grantex_vault_exchange_duration_seconds histogram"))
        let refused = try await cli(["metrics"], socket: daemon.socketPath, asNobody: true)
        #expect(refused.status != 0)
    }

    @Test("the daemon runs with core dumps off")
    func noCoreDumps() async throws {
        let daemon = try await Daemon.started()
        let pid = try #require(daemon.pid)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let core = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") })
        #expect(core.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).prefix(2) == ["0", "0"])
    }

    @Test("install.sh stages binaries, units, sysusers/tmpfiles entries and a 0640 config")
    func install() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let stage = Scratch()
        let result = try await run(
            root + "/scripts/install.sh", [], environment: ["DESTDIR": stage.path, "PREFIX": "/usr", "BIN_DIR": Binaries.directory])
        #expect(result.status == 0, "\(result.stderr)")
        for file in ["usr/bin/grantex-vaultd", "usr/bin/grantex-vault", "etc/systemd/system/grantex-vaultd.service",
                     "etc/systemd/system/grantex-vaultd.socket", "etc/sysusers.d/grantex-vault.conf", "etc/tmpfiles.d/grantex-vault.conf",
                     "etc/grantex-vault/vaultd.conf", "usr/share/doc/grantex-vault/store-format.md"] {
            #expect(FileManager.default.fileExists(atPath: stage.file(file)), "\(file)")
        }
        var info = stat()
        #expect(stat(stage.file("etc/grantex-vault/vaultd.conf"), &info) == 0 && info.st_mode & 0o777 == 0o640)
        let unit = try String(contentsOfFile: stage.file("etc/systemd/system/grantex-vaultd.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/grantex-vaultd --config /etc/grantex-vault/vaultd.conf"))
    }

    @Test("the benchmark tool runs end to end (a smoke run: no timing is asserted)")
    func benchSmoke() async throws {
        let bench = try await run(
            Binaries.directory + "/grantex-vault-bench",
            ["--daemon", Binaries.daemon, "--duration", "0.2", "--connections", "1,2", "--scenarios", "warm,cold,store,get,list",
             "--cold-tokens", "50", "--no-anchors"], timeout: 120)
        #expect(bench.status == 0, "\(bench.stderr)")
        let rows = bench.stdout.split(separator: "\n").filter { line in
            ["warm", "cold", "store", "get", "list"].contains { line.hasPrefix("| \($0) |") }
        }
        #expect(rows.count == 10, "\(bench.stdout)")
        for row in rows { #expect(row.hasSuffix("| 0 |"), "a run had errors: \(row)") }
        #expect(bench.stdout.contains("## Targets"))
    }

    @Test("the units pass systemd-analyze verify and score an exposure of 1.0 or lower")
    func units() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let check = try await run(root + "/scripts/check-systemd.sh", [Binaries.daemon])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("verify clean"))
    }
}
