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
    @Option(help: "Failed exchanges a peer uid may make at once before RATE_LIMITED (default 20).") var exchangeFailureBurst: String?
    @Option(help: "Failed exchanges per second a peer uid may make after the burst (default 5).") var exchangeFailureRate: String?

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
        flags.exchangeFailureBurst = exchangeFailureBurst
        flags.exchangeFailureRate = exchangeFailureRate
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
        let shutdownSignals = ShutdownSignals()
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
        let metrics = VaultMetrics()
        let store: CredentialStore
        do {
            store = try CredentialStore.open(
                directory: configuration.stateDirectory, masterKey: masterKey, clock: clock, logger: logger,
                options: StoreOptions(metrics: metrics))
        } catch {
            throw StartupFailure(message: error.message)
        }
        let audit: AuditLog
        let verifier: GrantVerifier
        do {
            audit = try AuditLog.open(directory: configuration.stateDirectory, masterKey: masterKey, clock: clock, logger: logger)
        } catch {
            store.close()
            throw StartupFailure(message: error.message)
        }
        do {
            let (keys, grantPolicy) = try Self.grantSettings(configuration, logger: logger)
            verifier = GrantVerifier(keys: keys, policy: grantPolicy, metrics: metrics)
        } catch {
            store.close()
            audit.close()
            throw error
        }
        let service = VaultService(
            store: store, audit: audit, verifier: verifier, policy: Self.accessPolicy(configuration),
            info: ServiceInfo(startedAt: clock.now()),
            rateLimiter: FailureRateLimiter(burst: configuration.exchangeFailureBurst, perSecond: configuration.exchangeFailureRate),
            metrics: metrics, clock: clock)

        let inheritedSocket: Int32?
        do {
            inheritedSocket = try Systemd.takeListeningSocket()
        } catch {
            store.close()
            audit.close()
            throw StartupFailure(message: error.message)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: ProcessInfo.processInfo.activeProcessorCount)
        let server = VaultServer(
            configuration: ServerConfiguration(
                socketPath: configuration.socketPath, socketMode: configuration.socketMode,
                maxLineBytes: configuration.maxLineBytes, idleTimeoutSeconds: configuration.idleTimeoutSeconds,
                inheritedSocket: inheritedSocket),
            service: service, logger: logger, group: group, clock: clock)
        let listeningOn: String
        do {
            listeningOn = try await server.start()
        } catch {
            store.close()
            audit.close()
            try? await group.shutdownGracefully()
            throw StartupFailure(message: "\(error)")
        }
        Systemd.notify("READY=1\nSTATUS=Serving \(store.count) credentials on \(listeningOn)")
        let watchdog = Systemd.startWatchdog(on: group.next())
        if configuration.dev { printQuickStart(configuration) }

        let flags = self.flags
        let reload = ReloadSignal(logger: logger) {
            // SIGHUP: re-read the config file and the JWKS; on any error keep what runs now.
            do {
                let fresh = try DaemonConfiguration.resolve(
                    flags: flags, environment: ProcessInfo.processInfo.environment,
                    workingDirectory: FileManager.default.currentDirectoryPath)
                let (keys, grantPolicy) = try Self.grantSettings(fresh, logger: logger)
                verifier.reconfigure(keys: keys, policy: grantPolicy)
                service.policy = Self.accessPolicy(fresh)
                logger.info("reloaded configuration and keys", metadata: ["jwksKeyIds": .string(verifier.keyIds.joined(separator: ","))])
            } catch {
                logger.error("reload failed; keeping the previous configuration and keys", metadata: ["error": .string("\(error)")])
            }
        }
        var groupConfiguration = ServiceGroupConfiguration(services: [.init(service: server)], logger: logger)
        // Bounded shutdown: the unit's TimeoutStopSec is 30 s; queued writes take milliseconds.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(20)
        let serviceGroup = ServiceGroup(configuration: groupConfiguration)
        await shutdownSignals.attach(serviceGroup)
        try await serviceGroup.run()
        watchdog?.cancel()
        reload.cancel()
        try? await group.shutdownGracefully()
    }

    static func accessPolicy(_ configuration: DaemonConfiguration) -> AccessPolicy {
        AccessPolicy(daemonUid: geteuid(), adminUids: configuration.adminUids, adminGids: configuration.adminGids)
    }

    /// The JWKS and grant policy of `configuration`; in `--dev`, the local dev issuer unless `--jwks`
    /// is given, and developer id `dev_local` unless one is given.
    static func grantSettings(_ configuration: DaemonConfiguration, logger: Logger) throws -> (KeySet?, GrantPolicy) {
        var developerIds = configuration.developerIds
        var jwksPath = configuration.jwksPath
        if let devDirectory = configuration.devDirectory {
            if developerIds.isEmpty { developerIds = [DevIssuer.defaultDeveloperId] }
            if jwksPath == nil {
                do {
                    jwksPath = try DevIssuer.prepare(
                        directory: devDirectory, issuer: configuration.issuer, developerId: developerIds[0], audience: configuration.audience)
                } catch {
                    throw StartupFailure(message: error.message)
                }
            }
        }
        var keys: KeySet? = nil
        if let jwksPath {
            do {
                keys = try KeySet.load(path: jwksPath)
            } catch {
                throw StartupFailure(message: error.message)
            }
            for skipped in keys?.skipped ?? [] {
                logger.warning("JWKS key not used", metadata: ["path": .string(jwksPath), "detail": .string(skipped)])
            }
        } else {
            logger.notice("no --jwks given: every vault.exchange is refused (unknown_key)")
        }
        if developerIds.isEmpty {
            logger.notice("no --developer-id given: every vault.exchange is refused (wrong_developer)")
        }
        let policy = GrantPolicy(
            issuer: configuration.issuer, developerIds: Set(developerIds), audience: configuration.audience,
            leewaySeconds: configuration.leewaySeconds)
        return (keys, policy)
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
            Try, in another shell in this folder:
              export GRANTEX_VAULT_SOCKET=\(socket)
              printf %s 'gho_example_token' | grantex-vault store --principal-id alice --service github
              grantex-vault list
              export GRANTEX_GRANT_TOKEN=$(grantex-vault dev token --principal-id alice --scope github:read)
              grantex-vault exchange --service github
            Stop with Ctrl-C.

            """
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
