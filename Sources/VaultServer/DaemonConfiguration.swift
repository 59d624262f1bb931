import Foundation
import Logging
import VaultProtocol

/// The daemon's settings as given on the command line; nil/empty means "not given".
public struct DaemonFlags: Sendable {
    public var socket: String?
    public var socketMode: String?
    public var stateDir: String?
    public var keyFile: String?
    public var issuer: String?
    public var jwks: String?
    public var developerIds: [String] = []
    public var audience: String?
    public var leeway: String?
    public var adminUids: [String] = []
    public var adminGids: [String] = []
    public var maxLineBytes: String?
    public var idleTimeout: String?
    public var config: String?
    public var dev = false
    public var logLevel: String?
    public var logFormat: String?
    public var exchangeFailureBurst: String?
    public var exchangeFailureRate: String?

    public init() {}
}

/// A configuration problem, reported on one line that names the setting (and file and line).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The resolved settings of a daemon run.
///
/// Precedence: command-line flags, then the `--config` file, then the environment systemd sets
/// (`RUNTIME_DIRECTORY`, `STATE_DIRECTORY`, `CREDENTIALS_DIRECTORY`), then `--dev` defaults, then
/// the built-in defaults of INTERFACE.md.
public struct DaemonConfiguration: Sendable, Equatable {
    public static let defaultIssuer = "https://grantex.dev"
    public static let defaultSocketPath = "/run/grantex-vault/vaultd.sock"
    public static let defaultStateDirectory = "/var/lib/grantex-vault"
    public static let defaultLeewaySeconds = 30
    /// The folder `--dev` keeps everything in, relative to the working directory.
    public static let devDirectoryName = ".grantex-vault"

    public var socketPath: String
    public var socketMode: mode_t
    public var stateDirectory: String
    public var keyFile: String
    public var issuer: String
    public var jwksPath: String?
    public var developerIds: [String]
    public var audience: String?
    public var leewaySeconds: Int
    public var adminUids: Set<UInt32>
    public var adminGids: Set<UInt32>
    public var maxLineBytes: Int
    public var idleTimeoutSeconds: Double
    public var logLevel: Logger.Level
    public var logFormat: StderrLogHandler.Format
    public var dev: Bool
    /// Failed exchanges a peer uid may make at once, and per second after that.
    public var exchangeFailureBurst: Double
    public var exchangeFailureRate: Double
    /// In `--dev`: the folder holding everything.
    public var devDirectory: String?

    /// Settings a config file may hold: the long flag names without `--`.
    static let fileKeys: Set<String> = [
        "socket", "socket-mode", "state-dir", "key-file", "issuer", "jwks", "developer-id", "audience", "leeway",
        "admin-uid", "admin-gid", "max-line-bytes", "idle-timeout", "log-level", "log-format", "exchange-failure-burst",
        "exchange-failure-rate",
    ]
    static let repeatableKeys: Set<String> = ["developer-id", "admin-uid", "admin-gid"]

    /// Resolves `flags` against the config file, `environment` and defaults.
    public static func resolve(
        flags: DaemonFlags, environment: [String: String], workingDirectory: String
    ) throws(ConfigurationError) -> DaemonConfiguration {
        let file = try flags.config.map { (path) throws(ConfigurationError) in try parseConfigFile(path: path) } ?? [:]
        func single(_ flag: String?, _ key: String) -> String? { flag ?? file[key]?.last }
        func multiple(_ flag: [String], _ key: String) -> [String] { flag.isEmpty ? (file[key] ?? []) : flag }

        let devDirectory = flags.dev ? workingDirectory + "/" + devDirectoryName : nil
        let runtimeDirectory = environment["RUNTIME_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
        let stateDirectoryEnv = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
        let credentialsDirectory = environment["CREDENTIALS_DIRECTORY"]

        let socketPath =
            single(flags.socket, "socket") ?? devDirectory.map { $0 + "/vaultd.sock" }
            ?? runtimeDirectory.map { $0 + "/vaultd.sock" } ?? defaultSocketPath
        let stateDirectory =
            single(flags.stateDir, "state-dir") ?? devDirectory.map { $0 + "/state" } ?? stateDirectoryEnv ?? defaultStateDirectory
        let keyFile =
            single(flags.keyFile, "key-file") ?? devDirectory.map { $0 + "/vault.key" }
            ?? credentialsDirectory.map { $0 + "/vault.key" } ?? stateDirectory + "/vault.key"

        let modeText = single(flags.socketMode, "socket-mode") ?? "0660"
        guard let socketMode = mode_t(modeText, radix: 8), socketMode <= 0o777 else {
            throw ConfigurationError(message: "--socket-mode must be an octal mode such as 0660, not '\(modeText.prefix(16))'")
        }
        let leeway = try integer(single(flags.leeway, "leeway"), name: "leeway", default: defaultLeewaySeconds, range: 0...86_400)
        let maxLine = try integer(
            single(flags.maxLineBytes, "max-line-bytes"), name: "max-line-bytes", default: Limits.defaultMaxLineBytes,
            range: 1024...(64 << 20))
        let idleText = single(flags.idleTimeout, "idle-timeout")
        let idle: Double
        if let idleText {
            guard let value = Double(idleText), value > 0, value <= 86_400 else {
                throw ConfigurationError(message: "--idle-timeout must be a number of seconds from 0 to 86400, not '\(idleText.prefix(16))'")
            }
            idle = value
        } else {
            idle = Double(Limits.defaultIdleTimeoutSeconds)
        }
        let adminUids = try Set(multiple(flags.adminUids, "admin-uid").map { (text) throws(ConfigurationError) in try id(text, name: "admin-uid") })
        let adminGids = try Set(multiple(flags.adminGids, "admin-gid").map { (text) throws(ConfigurationError) in try id(text, name: "admin-gid") })
        let levelText = single(flags.logLevel, "log-level") ?? "info"
        guard let logLevel = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ConfigurationError(message: "--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        let formatText = single(flags.logFormat, "log-format") ?? "text"
        guard let logFormat = StderrLogHandler.Format(rawValue: formatText.lowercased()) else {
            throw ConfigurationError(message: "--log-format must be text or json")
        }
        func positive(_ text: String?, _ name: String, default value: Double) throws(ConfigurationError) -> Double {
            guard let text else { return value }
            guard let parsed = Double(text), parsed > 0, parsed <= 1_000_000 else {
                throw ConfigurationError(message: "--\(name) must be a positive number, not '\(text.prefix(16))'")
            }
            return parsed
        }
        let burst = try positive(single(flags.exchangeFailureBurst, "exchange-failure-burst"), "exchange-failure-burst", default: 20)
        let rate = try positive(single(flags.exchangeFailureRate, "exchange-failure-rate"), "exchange-failure-rate", default: 5)
        let developerIds = multiple(flags.developerIds, "developer-id")
        if developerIds.contains(where: \.isEmpty) { throw ConfigurationError(message: "--developer-id must not be empty") }

        return DaemonConfiguration(
            socketPath: socketPath, socketMode: socketMode, stateDirectory: stateDirectory, keyFile: keyFile,
            issuer: single(flags.issuer, "issuer") ?? defaultIssuer, jwksPath: single(flags.jwks, "jwks"),
            developerIds: developerIds, audience: single(flags.audience, "audience"), leewaySeconds: leeway,
            adminUids: adminUids, adminGids: adminGids, maxLineBytes: maxLine, idleTimeoutSeconds: idle,
            logLevel: logLevel, logFormat: logFormat, dev: flags.dev, exchangeFailureBurst: burst, exchangeFailureRate: rate,
            devDirectory: devDirectory)
    }

    private static func integer(_ text: String?, name: String, default value: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text else { return value }
        guard let parsed = Int(text), range.contains(parsed) else {
            throw ConfigurationError(message: "--\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), not '\(text.prefix(16))'")
        }
        return parsed
    }

    private static func id(_ text: String, name: String) throws(ConfigurationError) -> UInt32 {
        guard let value = UInt32(text) else {
            throw ConfigurationError(message: "--\(name) must be a numeric id, not '\(text.prefix(16))'")
        }
        return value
    }

    /// Reads `key = value` lines; `#` starts a comment; values may be double-quoted; repeatable
    /// settings may appear more than once.
    static func parseConfigFile(path: String) throws(ConfigurationError) -> [String: [String]] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(message: "cannot read config file \(path)")
        }
        var settings: [String: [String]] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(message: "config file \(path) line \(number + 1): expected `setting = value`")
            }
            var key = line[..<equals].trimmingCharacters(in: .whitespaces)
            if key.hasPrefix("--") { key.removeFirst(2) }
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard fileKeys.contains(key) else {
                throw ConfigurationError(message: "config file \(path) line \(number + 1): unknown setting '\(key.prefix(40))'")
            }
            if !repeatableKeys.contains(key), settings[key] != nil {
                throw ConfigurationError(message: "config file \(path) line \(number + 1): '\(key)' is set twice")
            }
            settings[key, default: []].append(value)
        }
        return settings
    }
}
