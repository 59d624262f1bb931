import ArgumentParser
import Foundation
import GrantexVault
import VaultCore

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a new random 32-byte master key (hex, mode 0600). Never overwrites a file.")

    @Argument(help: "Where to write the key.") var path: String

    func run() async throws {
        do {
            try KeyFile.generate(path: path)
        } catch {
            throw CLIFailure(status: CLIFailure.daemonError, message: error.message)
        }
        FileHandle.standardError.write(Data("grantex-vault: wrote a new master key to \(path) (mode 0600); back it up: without it the store cannot be opened\n".utf8))
    }
}

struct Store: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store (or replace) a principal's credential for a service.",
        discussion: "The access token is read from --access-token-file, --access-token, or else standard input (one trailing newline stripped), so that it need not appear in the process list.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "The end user the credential belongs to.") var principalId: String
    @Option(help: "The upstream service, e.g. github.") var service: String
    @Option(help: "Credential type (default oauth2).") var credentialType: String?
    @Option(help: "RFC 3339 expiry of the upstream token.") var tokenExpiresAt: String?
    @Option(help: "A JSON object stored with the credential.") var metadata: String?
    @Option(help: "Read the access token from this file.") var accessTokenFile: String?
    @Option(help: "The access token itself (visible in the process list: prefer the file or stdin).") var accessToken: String?
    @Option(help: "Read the refresh token from this file.") var refreshTokenFile: String?

    func validate() throws {
        if accessTokenFile != nil, accessToken != nil {
            throw ValidationError("give at most one of --access-token-file and --access-token")
        }
    }

    func run() async throws {
        var metadataObject: JSONObject? = nil
        if let metadata {
            guard case .object(let object)? = try? JSONParser.parse(metadata) else {
                throw CLIFailure.usageError("--metadata must be a JSON object, e.g. '{\"scopes\":[\"repo\"]}'")
            }
            metadataObject = object
        }
        let token: String
        if let accessTokenFile {
            token = try SecretInput.file(accessTokenFile, what: "access token")
        } else if let accessToken {
            token = accessToken
        } else {
            token = try SecretInput.standardInput(what: "access token")
        }
        let refresh = try refreshTokenFile.map { try SecretInput.file($0, what: "refresh token") }
        let params = StoreCredentialParams(
            principalId: principalId, service: service, accessToken: token, credentialType: credentialType,
            refreshToken: refresh, tokenExpiresAt: tokenExpiresAt, metadata: metadataObject)
        let stored = try await global.withClient { try await $0.vault.store(params) }
        global.emit(stored.json) {
            "\(stored.created ? "Stored" : "Replaced") credential \(stored.id) (\(stored.principalId) / \(stored.service))"
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List stored credentials (all pages), newest first.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this principal's credentials.") var principalId: String?
    @Option(help: "Only credentials for this service.") var service: String?
    @Option(help: "Page size for each request to the daemon (1-1000).") var limit: Int?

    func validate() throws {
        if let limit, !(1...1000).contains(limit) { throw ValidationError("--limit must be from 1 to 1000") }
    }

    func run() async throws {
        let credentials = try await global.withClient {
            try await $0.vault.listAll(principalId: principalId, service: service, pageSize: limit ?? 1000)
        }
        let result = ListVaultCredentialsResponse(credentials: credentials, nextCursor: nil)
        global.emit(result.json) {
            Table.render(
                header: ["ID", "PRINCIPAL", "SERVICE", "TYPE", "EXPIRES", "UPDATED"],
                rows: credentials.map {
                    [$0.id, $0.principalId, $0.service, $0.credentialType, $0.tokenExpiresAt ?? "-", $0.updatedAt]
                })
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one credential (never its tokens).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The credential id (vault_...).") var id: String

    func run() async throws {
        let credential = try await global.withClient { try await $0.vault.get(id) }
        global.emit(credential.json) {
            Table.fields([
                ("id", credential.id), ("principalId", credential.principalId), ("service", credential.service),
                ("credentialType", credential.credentialType), ("tokenExpiresAt", credential.tokenExpiresAt ?? "-"),
                ("hasRefreshToken", String(credential.hasRefreshToken)), ("metadata", JSONValue.object(credential.metadata).jsonString),
                ("createdAt", credential.createdAt), ("updatedAt", credential.updatedAt),
            ])
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a credential.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The credential id (vault_...).") var id: String

    func run() async throws {
        let deleted = try await global.withClient { try await $0.vault.delete(id) }
        global.emit(deleted.json) { "Deleted credential \(deleted.id)" }
    }
}

struct Exchange: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exchange a grant token for the upstream access token; prints the token alone.",
        discussion: "The grant token comes from --grant-token, else $GRANTEX_GRANT_TOKEN, else standard input.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "The service whose token to get.") var service: String
    @Option(help: "The grant token (visible in the process list: prefer the environment or stdin).") var grantToken: String?

    func run() async throws {
        let token: String
        if let grantToken {
            token = grantToken
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["GRANTEX_GRANT_TOKEN"], !fromEnvironment.isEmpty {
            token = fromEnvironment
        } else {
            token = try SecretInput.standardInput(what: "grant token")
        }
        let result = try await global.withClient {
            try await $0.vault.exchange(grantToken: token, params: ExchangeCredentialParams(service: service))
        }
        global.emit(result.json) { result.accessToken }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's status (admins only).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let status = try await global.withClient { try await $0.status() }
        global.emit(.object(status)) {
            Table.fields(status.map { key, value in (key, value.stringValue ?? value.jsonString) })
        }
    }
}

struct Metrics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the daemon's metrics in the Prometheus text format (admins only).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let result = try await global.withClient { try await $0.call(RPCMethod.metrics) }
        global.emit(result) { String((result.objectValue?["text"]?.stringValue ?? "").trimmingSuffix("\n")) }
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: Character) -> Substring {
        var text = self[...]
        while text.last == suffix { text = text.dropLast() }
        return text
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let health = try await global.withClient { try await $0.health() }
        global.emit(.object(health)) {
            "\(health["status"]?.stringValue ?? "?") (grantex-vaultd \(health["version"]?.stringValue ?? "?"))"
        }
    }
}

/// Plain-text tables for people.
enum Table {
    static func render(header: [String], rows: [[String]], empty: String = "No credentials.") -> String {
        if rows.isEmpty { return empty }
        var widths = header.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func fields(_ pairs: [(String, String)]) -> String {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { key, value in key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value }.joined(separator: "\n")
    }
}
