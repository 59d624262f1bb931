import Foundation
import GrantexVault
import Testing

/// A small tmpfs the test mounts (as root) for the state directory, unmounted at the end.
final class SmallFilesystem {
    let path: String
    private let scratch = Scratch()

    init(bytes: Int) async throws {
        path = scratch.file("mnt")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let mounted = try await run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes),mode=0700", "tmpfs", path])
        guard mounted.status == 0 else { throw HarnessError(description: "mount tmpfs: \(mounted.stderr)") }
    }

    /// Writes a filler file until the filesystem is full.
    func fill() throws {
        let filler = path + "/filler"
        FileManager.default.createFile(atPath: filler, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        defer { try? handle.close() }
        let chunk = Data(count: 16 * 1024)
        while (try? handle.write(contentsOf: chunk)) != nil {}
        var info = statvfs()
        statvfs(path, &info)
        precondition(info.f_bavail == 0, "filesystem not full")
    }

    func freeFiller() { unlink(path + "/filler") }

    deinit {
        let path = self.path
        // Lazy unmount: the daemon may still hold files open for a moment.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/umount")
        process.arguments = ["-l", path]
        try? process.run()
    }
}

@Suite("Faults: disk full")
struct FaultTests {
    @Test("disk full: writes answer UNAVAILABLE, reads and exchanges keep working, nothing is lost, writes resume")
    func diskFull() async throws {
        let disk = try await SmallFilesystem(bytes: 4 << 20)
        let factory = TokenFactory()
        let probe = try await Daemon.started()
        try factory.writeJWKS(to: probe.scratch.file("jwks.json"))
        try await probe.stop()
        let daemon = try await Daemon.started(
            arguments: ["--state-dir", disk.path + "/state", "--jwks", probe.scratch.file("jwks.json"), "--developer-id", TokenFactory.developer],
            keyFile: probe.keyFile)
        let client = daemon.client()
        var stored: [String] = []
        for index in 0..<5 {
            stored.append(try await client.vault.store(StoreCredentialParams(principalId: "user_alice", service: "svc\(index)", accessToken: "tok\(index)")).id)
        }
        try disk.fill()
        // Whatever the filler left in partly used pages is not enough for the checks below.

        // tmpfs allocates whole pages: the log's last page may still take a few records.
        var acknowledgedWhileFull: [String] = []
        var firstFailure: VaultError? = nil
        for index in 0..<200 where firstFailure == nil {
            do {
                acknowledgedWhileFull.append(try await client.vault.store(
                    StoreCredentialParams(principalId: "late", service: "full\(index)", accessToken: String(repeating: "t", count: 200))).id)
            } catch let error as VaultError {
                firstFailure = error
            }
        }
        let failure = try #require(firstFailure, "200 stores succeeded on a full disk")
        #expect(failure.code == .unavailable)
        #expect(failure.message.contains("no space"))
        for index in 0..<3 {
            await #expect(throws: VaultError.self) {
                _ = try await client.vault.store(StoreCredentialParams(principalId: "again", service: "s\(index)", accessToken: String(repeating: "t", count: 200)))
            }
        }
        #expect(try await client.vault.get(stored[1]).service == "svc1")
        #expect(try await client.vault.list().credentials.count == 5 + acknowledgedWhileFull.count)
        let token = factory.token(TokenFactory.claims(scopes: ["*"]))
        // Enough exchanges to need audit pages beyond the last one: they land in reserved space.
        for index in 0..<40 {
            let exchanged = try await client.vault.exchange(grantToken: token, params: ExchangeCredentialParams(service: "svc\(index % 5)"))
            #expect(exchanged.accessToken == "tok\(index % 5)")
        }

        disk.freeFiller()
        let resumed = try await client.vault.store(StoreCredentialParams(principalId: "late", service: "svc0", accessToken: "t"))
        #expect(resumed.created)
        try await client.vault.delete(stored[0])
        await client.close()

        try await daemon.stop()
        try await daemon.start()
        let reopened = daemon.client()
        let all = try await reopened.vault.listAll()
        #expect(Set(all.map(\.id)) == Set(stored.dropFirst() + acknowledgedWhileFull + [resumed.id]))
        await reopened.close()
        try await daemon.stop()
        let verify = try await run(Binaries.cli, ["audit", "verify", "--state-dir", disk.path + "/state", "--key-file", probe.keyFile])
        #expect(verify.status == 0, "\(verify.stderr)")
    }
}
