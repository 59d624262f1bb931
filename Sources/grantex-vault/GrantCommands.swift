import ArgumentParser
import Foundation
import GrantexVault
import VaultCore

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a grant token (by jti) or a whole grant (by grant id).")

    @OptionGroup var global: GlobalOptions
    @Option(help: "The token id (jti) to revoke.") var jti: String?
    @Option(help: "The grant id (grnt) to revoke: every token of the grant.") var grantId: String?
    @Option(help: "RFC 3339 time after which the entry may be forgotten (when the tokens have expired).") var expiresAt: String?

    func validate() throws {
        guard (jti == nil) != (grantId == nil) else { throw ValidationError("give exactly one of --jti and --grant-id") }
    }

    func run() async throws {
        var params: JSONObject = jti.map { ["jti": .string($0)] } ?? ["grantId": .string(grantId!)]
        if let expiresAt { params["expiresAt"] = .string(expiresAt) }
        let result = try await global.withClient { try await $0.call(RPCMethod.revoke, params: params) }
        global.emit(result) { "Revoked \(jti.map { "token \($0)" } ?? "grant \(grantId!)")" }
    }
}

struct Revoked: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoked", abstract: "List revoked token and grant ids.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let result = try await global.withClient { try await $0.call(RPCMethod.listRevoked) }
        let entries = result.objectValue?["revoked"]?.arrayValue ?? []
        global.emit(result) {
            Table.render(
                header: ["KIND", "ID", "REVOKED", "FORGET AFTER"],
                rows: entries.compactMap(\.objectValue).map { entry in
                    let kind = entry["jti"] != nil ? "jti" : "grant"
                    return [kind, (entry["jti"] ?? entry["grantId"])?.stringValue ?? "", entry["revokedAt"]?.stringValue ?? "",
                            entry["expiresAt"]?.stringValue ?? "-"]
                }, empty: "No revocations.")
        }
    }
}

/// Where the state and key are, for commands that read files instead of asking the daemon.
struct LocalStoreOptions: ParsableArguments {
    @Option(help: "State directory (default: ./.grantex-vault/state when it exists, else $STATE_DIRECTORY or /var/lib/grantex-vault).")
    var stateDir: String?
    @Option(help: "Master key file (default: the dev key, else $CREDENTIALS_DIRECTORY/vault.key or <state-dir>/vault.key).")
    var keyFile: String?

    var resolved: (stateDirectory: String, keyFile: String) {
        let environment = ProcessInfo.processInfo.environment
        let dev = FileManager.default.currentDirectoryPath + "/.grantex-vault"
        let useDev = stateDir == nil && FileManager.default.fileExists(atPath: dev + "/state")
        let state = stateDir ?? (useDev ? dev + "/state" : environment["STATE_DIRECTORY"] ?? "/var/lib/grantex-vault")
        let key = keyFile ?? (useDev ? dev + "/vault.key" : environment["CREDENTIALS_DIRECTORY"].map { $0 + "/vault.key" } ?? state + "/vault.key")
        return (state, key)
    }

    func readAudit() throws -> AuditLog.Report {
        let (state, keyPath) = resolved
        let key: MasterKey
        do {
            key = try KeyFile.load(path: keyPath)
        } catch {
            throw CLIFailure(status: CLIFailure.daemonError, message: error.message)
        }
        do {
            return try AuditLog.read(directory: state, masterKey: key)
        } catch {
            throw CLIFailure(status: CLIFailure.daemonError, message: error.message)
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the sealed audit log (needs the master key).", subcommands: [Verify.self, Show.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every entry's seal, position and hash chain; print the count and the chain head.")

        @OptionGroup var local: LocalStoreOptions
        @Flag(help: "Print the result as JSON.") var json = false

        func run() async throws {
            let report = try local.readAudit()
            if let offset = report.lastEntryFailsAuthentication {
                throw CLIFailure(
                    status: CLIFailure.daemonError,
                    message: "\(local.resolved.stateDirectory)/audit.log: the last entry, at \(offset), fails authentication (edited, or damaged by a lost write)")
            }
            if json {
                var object: JSONObject = ["ok": true, "entries": .int(report.entries.count), "headHash": .string(report.headHash)]
                if let torn = report.tornTail { object["tornTail"] = .string(torn) }
                print(JSONValue.object(object).jsonString)
            } else {
                print("audit log OK: \(report.entries.count) entries, chain head \(report.headHash)")
                if let torn = report.tornTail { print("note: the log ends in an incomplete entry at \(torn) (a crash, or an append in progress)") }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print audit entries, oldest first, optionally filtered.")

        @OptionGroup var local: LocalStoreOptions
        @Option(help: "Only entries about this principal.") var principalId: String?
        @Option(help: "Only entries about this service.") var service: String?
        @Option(help: "Only entries with this outcome (allowed, refused, ok, failed).") var outcome: String?
        @Option(help: "Only this method, e.g. vault.exchange.") var method: String?
        @Option(help: "Only entries at or after this RFC 3339 time.") var since: String?
        @Option(help: "Only entries before this RFC 3339 time.") var until: String?
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            func time(_ text: String?, _ flag: String) throws -> Timestamp? {
                guard let text else { return nil }
                guard let parsed = Timestamp(rfc3339: text) else { throw CLIFailure.usageError("\(flag) must be an RFC 3339 time") }
                return parsed
            }
            let since = try time(self.since, "--since")
            let until = try time(self.until, "--until")
            let report = try local.readAudit()
            let lowered = service?.lowercased()
            let entries = report.entries.filter { entry in
                (principalId == nil || entry.principalId == principalId) && (lowered == nil || entry.service == lowered)
                    && (outcome == nil || entry.outcome == outcome) && (method == nil || entry.method == method)
                    && (since.map { entry.time >= $0 } ?? true) && (until.map { entry.time < $0 } ?? true)
            }
            if json {
                for entry in entries { print(JSONValue.object(entry.json()).jsonString) }
                return
            }
            print(Table.render(
                header: ["TIME", "METHOD", "OUTCOME", "CODE/REASON", "UID", "PRINCIPAL", "SERVICE", "AGENT", "GRANT", "REQUEST"],
                rows: entries.map { e in
                    [e.time.rfc3339, e.method, e.outcome, [e.code, e.reason].compactMap { $0 }.joined(separator: "/").nonEmpty ?? "-",
                     String(e.peer.uid), e.principalId ?? "-", e.service ?? "-", e.agent ?? "-", e.grantId ?? "-", e.requestId]
                }, empty: "No matching entries."))
        }
    }
}

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development helpers for a `grantex-vaultd --dev` in this folder.", subcommands: [Token.self])

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a grant token with the local dev issuer; prints the token.")

        @Option(help: "The principal (sub) the token names.") var principalId: String
        @Option(name: .customLong("scope"), help: "A scope (scp); repeatable, e.g. --scope github:read.") var scopes: [String] = []
        @Option(help: "Lifetime: seconds, or a number with s, m, h or d.") var ttl = "1h"
        @Option(help: "The developer id (dev); default: the dev daemon's.") var developerId: String?
        @Option(help: "The agent id (agt).") var agentId = "agent_dev"
        @Option(help: "The dev folder.") var devDir = FileManager.default.currentDirectoryPath + "/.grantex-vault"

        func validate() throws {
            if scopes.isEmpty { throw ValidationError("give at least one --scope") }
            if Self.seconds(ttl) == nil { throw ValidationError("--ttl must be like 900, 15m, 1h or 2d") }
        }

        static func seconds(_ text: String) -> Int? {
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
            if let unit = text.last, let factor = units[unit], let value = Int(text.dropLast()), value > 0 { return value * factor }
            if let value = Int(text), value > 0 { return value }
            return nil
        }

        func run() async throws {
            do {
                print(try DevIssuer.signToken(
                    directory: devDir, principalId: principalId, scopes: scopes, ttlSeconds: Self.seconds(ttl)!,
                    developerId: developerId, agentId: agentId))
            } catch {
                throw CLIFailure(status: CLIFailure.daemonError, message: error.message)
            }
        }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
