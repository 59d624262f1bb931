import Foundation
import GrantexVault
import Testing

@Suite("grantex-vault CLI against the real daemon")
struct CLITests {
    @Test("store from stdin, list, get, delete, with tables for people and --json for scripts")
    func roundTrip() async throws {
        let daemon = try await Daemon.started()
        let socket = daemon.socketPath
        let stored = try await cli(["store", "--principal-id", "alice", "--service", "GitHub", "--metadata", #"{"scopes":["repo"]}"#], socket: socket, stdin: "gho_from_stdin\n")
        #expect(stored.status == 0, "\(stored.stderr)")
        #expect(stored.stdout.contains("Stored credential vault_"))

        let json = try await cli(["--json", "store", "--principal-id", "bob", "--service", "slack"], socket: socket, stdin: "xoxb")
        #expect(json.status == 0)
        let result = try #require(try JSONParser.parse(json.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue)
        #expect(result["created"] == true)
        let bobId = try #require(result["id"]?.stringValue)

        let table = try await cli(["list"], socket: socket)
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("ID"))
        #expect(lines[1].contains("bob") && lines[2].contains("alice"))

        let listed = try await cli(["list", "--json", "--service", "github"], socket: socket)
        let page = try #require(try JSONParser.parse(listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue)
        #expect(page["credentials"]?.arrayValue?.count == 1)
        #expect(page["nextCursor"] == .null)

        let got = try await cli(["get", bobId, "--json"], socket: socket)
        #expect(got.status == 0)
        #expect(got.stdout.contains(#""principalId":"bob""#))
        #expect(!got.stdout.contains("xoxb"))

        #expect(try await cli(["delete", bobId], socket: socket).stdout.contains("Deleted credential \(bobId)"))
        let gone = try await cli(["get", bobId], socket: socket)
        #expect(gone.status == 1)
        #expect(gone.stderr == "grantex-vault: error: Credential not found (NOT_FOUND)\n")
    }

    @Test("the access token can come from a file, and the trailing newline is stripped")
    func tokenFromFile() async throws {
        let daemon = try await Daemon.started()
        let tokenFile = daemon.scratch.file("token")
        try "file_token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let refreshFile = daemon.scratch.file("refresh")
        try "refresh_token".write(toFile: refreshFile, atomically: true, encoding: .utf8)
        let stored = try await cli(
            ["store", "--principal-id", "p", "--service", "s", "--access-token-file", tokenFile, "--refresh-token-file", refreshFile,
             "--token-expires-at", "2027-01-01T00:00:00Z", "--credential-type", "api_key"], socket: daemon.socketPath)
        #expect(stored.status == 0, "\(stored.stderr)")
        let client = daemon.client()
        let credential = try #require(try await client.vault.list().credentials.first)
        #expect(credential.hasRefreshToken)
        #expect(credential.credentialType == "api_key")
        #expect(credential.tokenExpiresAt == "2027-01-01T00:00:00.000Z")
        await client.close()
    }

    @Test("exit status 2 for usage errors, 3 when the daemon cannot be reached")
    func exitStatuses() async throws {
        let usage = try await cli(["list", "--bogus"], socket: "/tmp/none.sock")
        #expect(usage.status == 2)
        #expect(usage.stderr.hasPrefix("grantex-vault: error: "))
        #expect(try await cli(["store", "--service", "x"], socket: "/tmp/none.sock", stdin: "t").status == 2)
        #expect(try await cli(["store", "--principal-id", "p", "--service", "s", "--metadata", "[1]"], socket: "/tmp/none.sock", stdin: "t").status == 2)

        let unreachable = try await cli(["health"], socket: "/tmp/gxv-none.sock")
        #expect(unreachable.status == 3)
        #expect(unreachable.stderr.contains("/tmp/gxv-none.sock"))
        #expect(unreachable.stderr.contains("grantex-vault: hint: "))
        let fromEnvironment = try await cli(["health"], socket: nil, environment: ["GRANTEX_VAULT_SOCKET": "/tmp/gxv-env.sock"])
        #expect(fromEnvironment.status == 3)
        #expect(fromEnvironment.stderr.contains("/tmp/gxv-env.sock"))
    }

    @Test("the daemon's validation errors reach the operator with their code")
    func daemonErrors() async throws {
        let daemon = try await Daemon.started()
        let bad = try await cli(["store", "--principal-id", "p", "--service", "no spaces allowed"], socket: daemon.socketPath, stdin: "t")
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("(BAD_REQUEST)"))
        let badDate = try await cli(["store", "--principal-id", "p", "--service", "s", "--token-expires-at", "tomorrow"], socket: daemon.socketPath, stdin: "t")
        #expect(badDate.status == 1)
        #expect(badDate.stderr.contains("tokenExpiresAt"))
    }

    @Test("health, status and the version flag")
    func statusCommands() async throws {
        let daemon = try await Daemon.started()
        let health = try await cli(["health", "--json"], socket: daemon.socketPath)
        #expect(health.stdout.contains(#""status":"ok""#))
        let status = try await cli(["status"], socket: daemon.socketPath)
        #expect(status.status == 0)
        #expect(status.stdout.contains("credentialCount"))
        #expect(status.stdout.contains("jwksKeyIds"))
        #expect(try await run(Binaries.cli, ["--version"]).stdout.contains("0."))
        #expect(try await run(Binaries.daemon, ["--version"]).stdout.contains("0."))
    }

    @Test("keygen refuses to overwrite an existing key")
    func keygenRefusesOverwrite() async throws {
        let scratch = Scratch()
        let path = scratch.file("k")
        #expect(try await run(Binaries.cli, ["keygen", path]).status == 0)
        let before = try String(contentsOfFile: path, encoding: .utf8)
        let again = try await run(Binaries.cli, ["keygen", path])
        #expect(again.status != 0)
        #expect(again.stderr.contains("refusing to overwrite"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == before)
    }
}
