import Foundation
import GrantexVault
import Testing

@Suite("Client library against the real daemon")
struct ClientLibraryTests {
    @Test("store, list, get and delete round trip through GrantexVaultClient")
    func roundTrip() async throws {
        let daemon = try await Daemon.started()
        let client = daemon.client()
        let metadata: JSONObject = ["scopes": ["repo", "read:user"], "rate": .number("1.50"), "nested": .object(["z": 1, "a": nil])]
        let stored = try await client.vault.store(
            StoreCredentialParams(
                principalId: "user_alice", service: "GitHub", accessToken: "gho_alice_token", credentialType: "oauth2",
                refreshToken: "ghr_refresh", tokenExpiresAt: "2027-03-01T10:00:00+02:00", metadata: metadata))
        #expect(stored.created)
        #expect(stored.id.hasPrefix("vault_") && stored.id.count == 32)
        #expect(stored.service == "github")
        #expect(stored.createdAt.hasSuffix("Z") && stored.createdAt.count == 24)

        let again = try await client.vault.store(StoreCredentialParams(principalId: "user_alice", service: "github", accessToken: "gho_new"))
        #expect(!again.created)
        #expect(again.id == stored.id)
        #expect(again.createdAt == stored.createdAt)

        _ = try await client.vault.store(StoreCredentialParams(principalId: "user_bob", service: "slack", accessToken: "xoxb", metadata: metadata))
        let page = try await client.vault.list()
        #expect(page.credentials.count == 2)
        #expect(page.nextCursor == nil)
        #expect(page.credentials[0].principalId == "user_bob")  // newest first

        let bob = try #require(page.credentials.first)
        #expect(bob.metadata == metadata)  // exactly as stored: order and number literals
        let fetched = try await client.vault.get(stored.id)
        #expect(fetched.credentialType == "oauth2")
        #expect(fetched.tokenExpiresAt == nil)  // cleared by the re-store
        #expect(!fetched.hasRefreshToken)

        let filtered = try await client.vault.list(ListVaultCredentialsParams(principalId: "user_alice"))
        #expect(filtered.credentials.map(\.id) == [stored.id])

        try await client.vault.delete(stored.id)
        do {
            _ = try await client.vault.get(stored.id)
            Issue.record("deleted credential still readable")
        } catch let error as VaultError {
            #expect(error.code == .notFound)
            #expect(error.message == "Credential not found")
            #expect(error.requestId?.hasPrefix("req_") == true)
        }
        let health = try await client.health()
        #expect(health["status"] == "ok")
        let status = try await client.status()
        #expect(status["credentialCount"] == 1)
        #expect(status["storePath"]?.stringValue?.hasPrefix(daemon.stateDirectory) == true)
        await client.close()
    }

    @Test("pagination through the client visits every credential once, in order")
    func pagination() async throws {
        let daemon = try await Daemon.started()
        let client = daemon.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<57 {
                group.addTask {
                    _ = try await client.vault.store(StoreCredentialParams(principalId: "p\(index)", service: "svc", accessToken: "t"))
                }
            }
            try await group.waitForAll()
        }
        var seen: [VaultCredential] = []
        var cursor: String? = nil
        repeat {
            let page = try await client.vault.list(ListVaultCredentialsParams(limit: 10, cursor: cursor))
            #expect(page.credentials.count <= 10)
            seen += page.credentials
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen.count == 57)
        #expect(Set(seen.map(\.id)).count == 57)
        #expect(seen == seen.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) })
        #expect(try await client.vault.listAll(pageSize: 7).map(\.id) == seen.map(\.id))
        await client.close()
    }

    @Test("many tasks share one connection; answers reach the right caller")
    func concurrentCallers() async throws {
        let daemon = try await Daemon.started()
        let client = daemon.client()
        let ids = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for index in 0..<100 {
                group.addTask {
                    let stored = try await client.vault.store(StoreCredentialParams(principalId: "user\(index)", service: "svc\(index % 3)", accessToken: "t"))
                    #expect(stored.principalId == "user\(index)")
                    return (index, stored.id)
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, id) in ids {
                group.addTask {
                    let credential = try await client.vault.get(id)
                    #expect(credential.principalId == "user\(index)")
                }
            }
            try await group.waitForAll()
        }
        await client.close()
    }

    @Test("a client reconnects after the daemon closed an idle connection")
    func reconnects() async throws {
        let daemon = try await Daemon.started(arguments: ["--idle-timeout", "1"])
        let client = daemon.client()
        #expect(try await client.health()["status"] == "ok")
        try await Task.sleep(for: .seconds(2.5))
        #expect(daemon.log.contains("closing idle connection"))
        #expect(try await client.health()["status"] == "ok")
        await client.close()
    }

    @Test("an unreachable daemon is a connection error naming the socket")
    func unreachable() async throws {
        let client = GrantexVaultClient(socketPath: "/tmp/gxv-no-such-daemon.sock")
        do {
            _ = try await client.health()
            Issue.record("reached a daemon that does not exist")
        } catch let error as VaultConnectionError {
            #expect(error.description.contains("/tmp/gxv-no-such-daemon.sock"))
        }
    }
}
