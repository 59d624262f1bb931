import ArgumentParser
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import VaultCore
import VaultProtocol
import VaultServer

/// `grantex-vaultd`: flags and config -> store, service, server -> ServiceGroup.
@main
struct GrantexVaultd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grantex-vaultd",
        abstract: "The grantex-vault daemon: a sealed local credential vault for AI agents, served over a Unix socket.",
        discussion: "Flags override the --config file. See INTERFACE.md and the README for every setting.",
        version: GrantexVaultVersion.current)

    @Option(help: "Unix socket to listen on (ignored under socket activation).") var socket: String?
    @Option(help: "Mode of the socket file, octal.") var socketMode: String?
    @Option(help: "Directory of the sealed store and the audit log (created 0700).") var stateDir: String?
    @Option(help: "The 32-byte master key file.") var keyFile: String?
    @Option(help: "The only accepted `iss` of grant tokens.") var issuer: String?
    @Option(help: "JWKS file with the issuer's public keys.") var jwks: String?
    @Option(name: .customLong("developer-id"), help: "Accepted `dev` claim; repeatable.") var developerIds: [String] = []
    @Option(help: "Required `aud` of grant tokens.") var audience: String?
    @Option(help: "Clock leeway in seconds for exp/nbf/iat.") var leeway: String?
    @Option(name: .customLong("admin-uid"), help: "Extra uid allowed the management methods; repeatable.") var adminUids: [String] = []
    @Option(name: .customLong("admin-gid"), help: "Extra gid allowed the management methods; repeatable.") var adminGids: [String] = []
    @Option(help: "Longest request line in bytes.") var maxLineBytes: String?
    @Option(help: "Close connections idle for this many seconds.") var idleTimeout: String?
    @Option(help: "Config file (`setting = value` lines) with the same settings.") var config: String?
    @Flag(help: "Development mode: everything under ./.grantex-vault/, key created on first start.") var dev = false
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?
    @Option(help: "text or json.") var logFormat: String?

    func run() async throws {
        var flags = DaemonFlags()
        flags.socket = socket
        flags.socketMode = socketMode
        flags.stateDir = stateDir
        flags.keyFile = keyFile
        flags.issuer = issuer
        flags.jwks = jwks
        flags.developerIds = developerIds
        flags.audience = audience
        flags.leeway = leeway
        flags.adminUids = adminUids
        flags.adminGids = adminGids
        flags.maxLineBytes = maxLineBytes
        flags.idleTimeout = idleTimeout
        flags.config = config
        flags.dev = dev
        flags.logLevel = logLevel
        flags.logFormat = logFormat
        do {
            try await Daemon(flags: flags).run()
        } catch let failure as StartupFailure {
            FileHandle.standardError.write(Data("grantex-vaultd: error: \(failure.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// A reason the daemon cannot start, printed as one line.
struct StartupFailure: Error {
    var message: String
}

struct Daemon {
    let flags: DaemonFlags

    func run() async throws {
        ProcessHardening.apply()
        let configuration: DaemonConfiguration
        do {
            configuration = try DaemonConfiguration.resolve(
                flags: flags, environment: ProcessInfo.processInfo.environment,
                workingDirectory: FileManager.default.currentDirectoryPath)
        } catch {
            throw StartupFailure(message: error.message)
        }
        let level = configuration.logLevel
        let format = configuration.logFormat
        LoggingSystem.bootstrap { label in StderrLogHandler(label: label, level: level, format: format) }
        let logger = Logger(label: "grantex-vaultd")

        if let devDirectory = configuration.devDirectory {
            try prepareDevDirectory(devDirectory, keyFile: configuration.keyFile, logger: logger)
        }
        let masterKey: MasterKey
        do {
            masterKey = try KeyFile.load(path: configuration.keyFile)
        } catch {
            throw StartupFailure(message: error.message)
        }
        let clock = VaultClock.system
        let store: CredentialStore
        do {
            store = try CredentialStore.open(directory: configuration.stateDirectory, masterKey: masterKey, clock: clock, logger: logger)
        } catch {
            throw StartupFailure(message: error.message)
        }
        let policy = AccessPolicy(daemonUid: geteuid(), adminUids: configuration.adminUids, adminGids: configuration.adminGids)
        let service = VaultService(store: store, policy: policy, info: ServiceInfo(issuer: configuration.issuer, startedAt: clock.now()), clock: clock)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: ProcessInfo.processInfo.activeProcessorCount)
        let server = VaultServer(
            configuration: ServerConfiguration(
                socketPath: configuration.socketPath, socketMode: configuration.socketMode,
                maxLineBytes: configuration.maxLineBytes, idleTimeoutSeconds: configuration.idleTimeoutSeconds,
                inheritedSocket: Systemd.takeListeningSocket()),
            service: service, logger: logger, group: group, clock: clock)
        let listeningOn: String
        do {
            listeningOn = try await server.start()
        } catch {
            store.close()
            try? await group.shutdownGracefully()
            throw StartupFailure(message: "\(error)")
        }
        Systemd.notify("READY=1\nSTATUS=Serving \(store.count) credentials on \(listeningOn)")
        if configuration.dev { printQuickStart(configuration) }

        let reload = ReloadSignal(logger: logger)
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
        reload.cancel()
        try? await group.shutdownGracefully()
    }

    private func prepareDevDirectory(_ directory: String, keyFile: String, logger: Logger) throws {
        if !FileManager.default.fileExists(atPath: directory) {
            guard mkdir(directory, 0o700) == 0 else {
                throw StartupFailure(message: "cannot create \(directory): \(String(cString: strerror(errno)))")
            }
        }
        if !FileManager.default.fileExists(atPath: keyFile) {
            do {
                try KeyFile.generate(path: keyFile)
            } catch {
                throw StartupFailure(message: error.message)
            }
            logger.notice("dev mode: created a new master key", metadata: ["path": .string(keyFile)])
        }
    }

    private func printQuickStart(_ configuration: DaemonConfiguration) {
        let socket = configuration.socketPath
        let text = """
            grantex-vaultd \(GrantexVaultVersion.current) is running in dev mode (not for production).
              socket:    \(socket)
              state:     \(configuration.stateDirectory)
              key:       \(configuration.keyFile)
            Try, in another shell:
              export GRANTEX_VAULT_SOCKET=\(socket)
              printf %s 'gho_example_token' | grantex-vault store --principal-id alice --service github
              grantex-vault list
            Stop with Ctrl-C.

            """
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
