import Foundation
import Testing
import VaultProtocol
@testable import VaultCore

@Suite("Credential store")
struct CredentialStoreTests {
    @Test("stored credentials survive a reopen, tokens included")
    func reload() async throws {
        let dir = TemporaryDirectory()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        var params = try storeParams("alice", "GitHub", token: "gho_alice", metadata: ["scopes": ["repo"], "n": .number("1.10")])
        params.refreshToken = "ghr_refresh"
        params.tokenExpiresAt = "2027-01-01T00:00:00.000Z"
        let first = try await store.store(params)
        _ = try await store.store(try storeParams("bob", "slack", token: "xoxb_bob"))
        store.close()

        let reopened = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        defer { reopened.close() }
        #expect(reopened.count == 2)
        let credential = try #require(reopened.credential(id: first.id))
        #expect(credential.view.service == "github")
        #expect(credential.view.metadata.jsonBytes == Array(#"{"scopes":["repo"],"n":1.10}"#.utf8))
        #expect(credential.view.tokenExpiresAt == "2027-01-01T00:00:00.000Z")
        #expect(credential.hasRefreshToken)
        #expect(reopened.secrets(of: credential) == CredentialSecrets(accessToken: "gho_alice", refreshToken: "ghr_refresh"))
    }

    @Test("storing again replaces every field but keeps id and createdAt")
    func upsert() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), clock: clock.clock, logger: makeLogger())
        defer { store.close() }
        var params = try storeParams("alice", "github", token: "one", metadata: ["a": 1])
        params.refreshToken = "r"
        params.credentialType = "api_key"
        let created = try await store.store(params)
        clock.advance(ms: 5000)
        let replaced = try await store.store(try storeParams("alice", "GITHUB", token: "two"))
        #expect(created.created)
        #expect(!replaced.created)
        #expect(replaced.id == created.id)
        #expect(replaced.createdAt == created.createdAt)
        #expect(replaced.updatedAt != created.updatedAt)
        let credential = try #require(store.credential(id: created.id))
        #expect(credential.credentialType == "oauth2")
        #expect(credential.metadata.isEmpty)
        #expect(!credential.hasRefreshToken)
        #expect(store.secrets(of: credential)?.accessToken == "two")
        #expect(store.count == 1)
    }

    @Test("delete is durable, and an unknown id is NOT_FOUND")
    func delete() async throws {
        let dir = TemporaryDirectory()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        let stored = try await store.store(try storeParams("alice", "github"))
        let deleted = try await store.delete(id: stored.id)
        #expect(deleted.deleted)
        await #expect(throws: VaultError.notFound()) { try await store.delete(id: stored.id) }
        store.close()
        let reopened = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        defer { reopened.close() }
        #expect(reopened.count == 0)
        #expect(reopened.credential(id: stored.id) == nil)
    }

    @Test("list pages newest first, ties by id descending, each credential exactly once")
    func listPaging() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), clock: clock.clock, logger: makeLogger())
        defer { store.close() }
        var ids: [String] = []
        for index in 0..<23 {
            if index % 3 == 0 { clock.advance(ms: 1) }  // groups of three share a createdAt
            // (index % 4, index % 5) is unique below 20; later ones get a service of their own.
            let service = index < 20 ? "svc\(index % 5)" : "other\(index)"
            ids.append(try await store.store(try storeParams("p\(index % 4)", service)).id)
        }
        func collect(_ params: ListVaultCredentialsParams) throws -> [VaultCredential] {
            var all: [VaultCredential] = []
            var params = params
            while true {
                let page = try store.list(params)
                #expect(page.credentials.count <= (params.limit ?? 100))
                all += page.credentials
                guard let next = page.nextCursor else { return all }
                params.cursor = next
            }
        }
        let everything = try collect(ListVaultCredentialsParams(limit: 4))
        #expect(everything.count == 23)
        #expect(Set(everything.map(\.id)) == Set(ids))
        let expectedOrder = everything.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        #expect(everything.map(\.id) == expectedOrder.map(\.id))
        let oneShot = try store.list(ListVaultCredentialsParams())
        #expect(oneShot.credentials.map(\.id) == everything.map(\.id))
        #expect(oneShot.nextCursor == nil)

        let p1 = try collect(ListVaultCredentialsParams(principalId: "p1", limit: 2))
        #expect(p1.count == 6 && p1.allSatisfy { $0.principalId == "p1" })
        #expect(p1.map(\.id) == everything.filter { $0.principalId == "p1" }.map(\.id))
        let svc2 = try collect(ListVaultCredentialsParams(service: "svc2", limit: 1))
        #expect(svc2.map(\.id) == everything.filter { $0.service == "svc2" }.map(\.id))
        let both = try collect(ListVaultCredentialsParams(principalId: "p2", service: "svc2"))
        #expect(both.map(\.id) == everything.filter { $0.service == "svc2" && $0.principalId == "p2" }.map(\.id))
        #expect(throws: VaultError.self) { try store.list(ListVaultCredentialsParams(cursor: "garbage")) }
    }

    @Test("concurrent writers share fsyncs (group commit) and all become durable")
    func groupCommit() async throws {
        let dir = TemporaryDirectory()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask { _ = try await store.store(try storeParams("p\(index)", "github", token: "t\(index)")) }
            }
            try await group.waitForAll()
        }
        let stats = store.fileStatistics
        #expect(stats.batchedWrites == 200)
        #expect(stats.batches < 200, "200 concurrent writes took \(stats.batches) fsyncs")
        store.close()
        let reopened = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        defer { reopened.close() }
        #expect(reopened.count == 200)
        #expect(reopened.secrets(of: try #require(reopened.credential(for: CredentialKey(principalId: "p77", service: "github"))))?.accessToken == "t77")
    }

    @Test("compaction rewrites the log without losing writes made while it runs")
    func compaction() async throws {
        let dir = TemporaryDirectory()
        let store = try CredentialStore.open(
            directory: dir.path, masterKey: key(1), logger: makeLogger(), options: StoreOptions(compactionMinimumRecords: 64))
        for round in 0..<400 {
            _ = try await store.store(try storeParams("p\(round % 10)", "github", token: "round\(round)"))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                group.addTask { _ = try await store.store(try storeParams("extra\(index)", "slack", token: "x\(index)")) }
            }
            try await group.waitForAll()
        }
        let stats = store.fileStatistics
        #expect(stats.generation > 1)
        #expect(stats.records < 500)
        store.close()
        let reopened = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        defer { reopened.close() }
        #expect(reopened.count == 110)
        for principal in 0..<10 {
            let credential = try #require(reopened.credential(for: CredentialKey(principalId: "p\(principal)", service: "github")))
            #expect(reopened.secrets(of: credential)?.accessToken == "round\(390 + principal)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("vault.log.compact")))
    }

    @Test("nothing about a credential is readable in any file of the state directory")
    func nothingInTheClear() async throws {
        let dir = TemporaryDirectory()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        var params = try storeParams(
            "principal-SENTINEL-7f3a", "service-sentinel-7f3a", token: "access-SENTINEL-7f3a",
            metadata: ["note": "metadata-SENTINEL-7f3a"])
        params.refreshToken = "refresh-SENTINEL-7f3a"
        let stored = try await store.store(params)
        store.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(!files.isEmpty)
        for file in files {
            let bytes = readFile(dir.file(file))
            for needle in ["SENTINEL", "sentinel", stored.id, String(stored.id.dropFirst(6))] {
                #expect(!bytes.contains(subsequence: Array(needle.utf8)), "\(file) contains \(needle)")
            }
            var info = stat()
            stat(dir.file(file), &info)
            #expect(info.st_mode & 0o077 == 0, "\(file) has mode \(String(info.st_mode & 0o777, radix: 8))")
        }
        var info = stat()
        stat(dir.path, &info)
        #expect(info.st_mode & 0o777 == 0o700)
    }

    @Test("a state directory writable by others is refused")
    func insecureDirectory() throws {
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o777)
        #expect(throws: StoreOpenError.self) { try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger()) }
    }

    @Test("a second store on the same directory is refused while the first is open")
    func exclusive() throws {
        let dir = TemporaryDirectory()
        let first = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        defer { first.close() }
        do {
            _ = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
            Issue.record("opened twice")
        } catch {
            #expect(error.kind == .locked)
        }
    }
}
