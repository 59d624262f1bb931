import Foundation
import GrantexVault
import Testing

/// Who may call what: SO_PEERCRED decides, with real processes of another uid (setpriv).
@Suite("Peer access control")
struct AccessControlTests {
    @Test("a peer with another uid is refused the management methods but may check health")
    func otherUidRefused() async throws {
        let daemon = try await Daemon.started(arguments: ["--socket-mode", "0666"], scratchMode: 0o755)
        _ = try await cli(["store", "--principal-id", "p", "--service", "s"], socket: daemon.socketPath, stdin: "secret")
        for command in [["list"], ["get", "vault_01ARZ3NDEKTSV4RRFFQ69G5FAV"], ["delete", "vault_01ARZ3NDEKTSV4RRFFQ69G5FAV"], ["status"]] {
            let refused = try await cli(command, socket: daemon.socketPath, asNobody: true)
            #expect(refused.status == 1, "\(command): \(refused.stderr)")
            #expect(refused.stderr.contains("(FORBIDDEN)"), "\(command): \(refused.stderr)")
        }
        let store = try await cli(["store", "--principal-id", "x", "--service", "s"], socket: daemon.socketPath, stdin: "t", asNobody: true)
        #expect(store.stderr.contains("(FORBIDDEN)"))
        let health = try await cli(["health"], socket: daemon.socketPath, asNobody: true)
        #expect(health.status == 0, "\(health.stderr)")
        #expect(daemon.log.contains("uid=65534"))
        // Nothing the refused peer sent changed the store.
        #expect(try await cli(["list", "--json"], socket: daemon.socketPath).stdout.components(separatedBy: "vault_").count == 2)
    }

    @Test("--admin-uid and --admin-gid let another uid manage")
    func adminFlags() async throws {
        for flag in ["--admin-uid", "--admin-gid"] {
            let daemon = try await Daemon.started(arguments: ["--socket-mode", "0666", flag, "65534"], scratchMode: 0o755)
            let listed = try await cli(["list"], socket: daemon.socketPath, asNobody: true)
            #expect(listed.status == 0, "\(flag): \(listed.stderr)")
        }
    }

    @Test("the socket file gets the configured mode")
    func socketMode() async throws {
        let daemon = try await Daemon.started()
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        let open = try await Daemon.started(arguments: ["--socket-mode", "0600"])
        #expect(stat(open.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
    }
}
