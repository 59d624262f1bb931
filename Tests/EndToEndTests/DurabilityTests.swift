import Foundation
import GrantexVault
import Testing

@Suite("Durability, shutdown and startup checks")
struct DurabilityTests {
    @Test("kill -9 during concurrent stores loses no acknowledged write", arguments: [0, 40, 300])
    func killNineLosesNothing(afterMilliseconds delay: Int) async throws {
        let daemon = try await Daemon.started()
        let acknowledged = Locked<[(principal: String, id: String)]>([])
        let writers = 8
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    let client = daemon.client()  // one connection per writer
                    var index = 0
                    while true {
                        let principal = "w\(writer)-\(index)"
                        guard let stored = try? await client.vault.store(
                            StoreCredentialParams(principalId: principal, service: "svc", accessToken: "token-\(principal)"))
                        else { break }
                        acknowledged.withLock { $0.append((principal, stored.id)) }
                        index += 1
                    }
                    await client.close()
                }
            }
            group.addTask {
                // Kill mid-stream: once writes are flowing, after a varying extra delay.
                while acknowledged.withLock({ $0.count }) < 20 { try? await Task.sleep(for: .milliseconds(2)) }
                try? await Task.sleep(for: .milliseconds(delay))
                _ = try? await daemon.stop(signal: SIGKILL)
            }
        }
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count > 0, "no store was acknowledged before the kill")
        try await daemon.start()
        let client = daemon.client()
        let present = try await client.vault.listAll()
        let byId = Dictionary(uniqueKeysWithValues: present.map { ($0.id, $0) })
        var lost = 0
        for (principal, id) in acked where byId[id]?.principalId != principal { lost += 1 }
        #expect(lost == 0, "\(lost) of \(acked.count) acknowledged writes lost")
        // Anything present beyond the acknowledged ones is a whole credential of this test, never a fragment.
        #expect(present.allSatisfy { $0.principalId.hasPrefix("w") && $0.service == "svc" })
        #expect(present.count >= acked.count)
        await client.close()
    }

    @Test("SIGTERM finishes in-flight writes, removes the socket and exits 0")
    func gracefulShutdown() async throws {
        let daemon = try await Daemon.started()
        let client = daemon.client()
        let results = Locked<[Result<StoreCredentialResponse, Error>]>([])
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    do {
                        let stored = try await client.vault.store(StoreCredentialParams(principalId: "g\(index)", service: "s", accessToken: "t"))
                        results.withLock { $0.append(.success(stored)) }
                    } catch {
                        results.withLock { $0.append(.failure(error)) }
                    }
                }
            }
            group.addTask { _ = try? await daemon.stop(signal: SIGTERM) }
        }
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(daemon.log.contains("stopped"))
        let succeeded = results.withLock { $0.compactMap { try? $0.get() } }
        await client.close()
        try await daemon.start()
        let reopened = daemon.client()
        let ids = Set(try await reopened.vault.listAll().map(\.id))
        for stored in succeeded { #expect(ids.contains(stored.id)) }
        #expect(try await daemon.stop(signal: SIGINT) == 0)
        await reopened.close()
    }

    @Test("exit status 0 after SIGTERM")
    func exitZero() async throws {
        let daemon = try await Daemon.started()
        #expect(try await daemon.stop(signal: SIGTERM) == 0)
    }

    @Test("SIGTERM while the daemon is still starting is a graceful shutdown, not a kill", arguments: 0..<3)
    func sigtermDuringStartup(round: Int) async throws {
        let scratch = Scratch()
        let key = scratch.file("vault.key")
        #expect(try await run(Binaries.cli, ["keygen", key]).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.daemon)
        process.arguments = ["--socket", scratch.file("s.sock"), "--state-dir", scratch.file("state"), "--key-file", key]
        process.standardError = FileHandle.nullDevice
        try process.run()
        // As early as possible: as soon as the socket file exists (round 0), or a little later.
        while !FileManager.default.fileExists(atPath: scratch.file("s.sock")) && process.isRunning { try await Task.sleep(for: .microseconds(200)) }
        if round > 0 { try await Task.sleep(for: .milliseconds(round * 3)) }
        kill(process.processIdentifier, SIGTERM)
        try await waitFor { !process.isRunning }
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
    }

    @Test("startup refuses a missing, malformed, exposed or wrong key with one line naming the file")
    func keyChecks() async throws {
        let scratch = Scratch()
        func start(_ keyFile: String, state: String = scratch.file("state")) async throws -> Completed {
            try await run(Binaries.daemon, ["--socket", scratch.file("s.sock"), "--state-dir", state, "--key-file", keyFile], timeout: 20)
        }
        let missing = try await start(scratch.file("missing.key"))
        #expect(missing.status != 0)
        #expect(missing.stderr.split(separator: "\n").count == 1)
        #expect(missing.stderr.contains(scratch.file("missing.key")) && missing.stderr.contains("keygen"))

        let malformed = scratch.file("bad.key")
        try "not a key\n".write(toFile: malformed, atomically: true, encoding: .utf8)
        chmod(malformed, 0o600)
        let bad = try await start(malformed)
        #expect(bad.status != 0 && bad.stderr.contains(malformed) && bad.stderr.contains("malformed"))

        let exposed = scratch.file("exposed.key")
        #expect(try await run(Binaries.cli, ["keygen", exposed]).status == 0)
        chmod(exposed, 0o644)
        let open = try await start(exposed)
        #expect(open.status != 0 && open.stderr.contains(exposed) && open.stderr.contains("group or others"))

        // A store made with one key, started with another: refused, nothing changed.
        let daemon = try await Daemon.started()
        _ = try await cli(["store", "--principal-id", "p", "--service", "s"], socket: daemon.socketPath, stdin: "t")
        try await daemon.stop()
        let other = scratch.file("other.key")
        #expect(try await run(Binaries.cli, ["keygen", other]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: daemon.stateDirectory + "/vault.log"))
        let wrong = try await start(other, state: daemon.stateDirectory)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("different master key"))
        #expect(wrong.stderr.split(separator: "\n").count == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: daemon.stateDirectory + "/vault.log")) == before)
    }

    @Test("a second daemon on a live socket refuses to start and leaves the first one serving")
    func liveSocket() async throws {
        let daemon = try await Daemon.started()
        let second = try await run(Binaries.daemon, ["--socket", daemon.socketPath, "--state-dir", daemon.scratch.file("state2"), "--key-file", daemon.keyFile])
        #expect(second.status != 0)
        #expect(second.stderr.contains("already listening"))
        #expect(try await cli(["health"], socket: daemon.socketPath).status == 0)
    }

    @Test("no secret, principal id, service name or metadata value appears in the state dir or the log")
    func secretHygiene() async throws {
        let daemon = try await Daemon.started(arguments: ["--log-level", "trace"])
        let secrets = ["access-SECRET-91c2", "refresh-SECRET-91c2", "principal-SECRET-91c2", "service-secret-91c2", "metadata-SECRET-91c2"]
        let refreshFile = daemon.scratch.file("refresh")
        try secrets[1].write(toFile: refreshFile, atomically: true, encoding: .utf8)
        let stored = try await cli(
            ["--json", "store", "--principal-id", secrets[2], "--service", secrets[3], "--metadata", #"{"m":"\#(secrets[4])"}"#,
             "--refresh-token-file", refreshFile], socket: daemon.socketPath, stdin: secrets[0])
        #expect(stored.status == 0)
        #expect(!stored.stdout.contains(secrets[0]) && !stored.stdout.contains(secrets[1]))
        _ = try await cli(["list"], socket: daemon.socketPath)
        // Bad requests carrying secrets: their errors must not echo them either.
        let connection = try RawConnection(daemon.socketPath)
        let echoed = try connection.call(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":{"principalId":"p","service":"s","accessToken":"\#(secrets[0])","\#(secrets[1])":1}}"#)
        #expect(!echoed.jsonBytes.contains(subsequence: Array("SECRET".utf8)))
        try connection.send(#"{"jsonrpc":"2.0","id":2,"method":"\#(secrets[0])"}"# + "\n")
        let unknownMethod = try connection.readJSON()
        #expect(unknownMethod.errorCode == "METHOD_NOT_FOUND")
        #expect(!unknownMethod.jsonBytes.contains(subsequence: Array("SECRET".utf8)))
        try await daemon.stop()
        let log = daemon.log
        for secret in secrets { #expect(!log.contains(secret), "the log contains \(secret)") }
        for file in try FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory) {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: daemon.stateDirectory + "/" + file)))
            for secret in secrets {
                #expect(!bytes.contains(subsequence: Array(secret.utf8)), "\(file) contains \(secret)")
            }
        }
    }

    @Test("--dev creates its key and prints a quick start; the CLI finds the dev socket from the same folder")
    func devMode() async throws {
        let scratch = Scratch()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.daemon)
        process.arguments = ["--dev"]
        process.currentDirectoryURL = URL(fileURLWithPath: scratch.path)
        let output = scratch.file("out.log")
        FileManager.default.createFile(atPath: output, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { kill(process.processIdentifier, SIGTERM) }
        let socket = scratch.file(".grantex-vault/vaultd.sock")
        let deadline = Date().addingTimeInterval(20)
        while !RawConnection.canConnect(socket), Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(RawConnection.canConnect(socket))
        var info = stat()
        #expect(stat(scratch.file(".grantex-vault/vault.key"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        let store = try await run(Binaries.cli, ["store", "--principal-id", "alice", "--service", "github"], stdin: "gho_dev", workingDirectory: scratch.path)
        #expect(store.status == 0, "\(store.stderr)")
        let printed = try String(contentsOfFile: output, encoding: .utf8)
        #expect(printed.contains("dev mode") && printed.contains(socket))
    }
}

extension JSONObject {
    fileprivate var jsonBytes: [UInt8] { JSONValue.object(self).jsonBytes }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, subsequence.count <= count else { return false }
        for start in 0...(count - subsequence.count) where self[start] == subsequence[0] {
            if Array(self[start..<(start + subsequence.count)]) == subsequence { return true }
        }
        return false
    }
}
