import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import VaultCore
import VaultProtocol

/// Where and how the server listens.
public struct ServerConfiguration: Sendable {
    public var socketPath: String
    /// Mode of the socket file, e.g. 0o660.
    public var socketMode: mode_t
    public var maxLineBytes: Int
    public var idleTimeoutSeconds: Double
    /// A listening socket inherited from systemd socket activation; `socketPath` is then ignored.
    public var inheritedSocket: Int32?

    public init(
        socketPath: String, socketMode: mode_t = 0o660, maxLineBytes: Int = Limits.defaultMaxLineBytes,
        idleTimeoutSeconds: Double = Double(Limits.defaultIdleTimeoutSeconds), inheritedSocket: Int32? = nil
    ) {
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.maxLineBytes = maxLineBytes
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.inheritedSocket = inheritedSocket
    }
}

/// Why the server could not start listening.
public struct ServerStartError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The Unix-socket server as a swift-service-lifecycle `Service`.
///
/// `run()` binds, reports readiness, serves until graceful shutdown is triggered (SIGTERM/SIGINT
/// through the `ServiceGroup`), then stops accepting, lets the store finish the writes already
/// queued (their answers are sent), closes the remaining connections and removes the socket file.
public final class VaultServer: Service, Sendable {
    private enum State {
        case idle
        case listening(Channel)
        case stopped
    }

    private let configuration: ServerConfiguration
    private let service: VaultService
    private let logger: Logger
    private let group: EventLoopGroup
    private let onReady: @Sendable (String) -> Void
    private let state = Mutex<State>(.idle)
    private let connections = ConnectionRegistry()
    private let requestIds: RequestIdGenerator

    /// - Parameter onReady: called with the socket path once the socket accepts connections.
    public init(
        configuration: ServerConfiguration, service: VaultService, logger: Logger, group: EventLoopGroup,
        clock: VaultClock = .system, onReady: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.service = service
        self.logger = logger
        self.group = group
        self.onReady = onReady
        self.requestIds = RequestIdGenerator(clock: clock)
    }

    /// Binds the socket (or adopts the inherited one); throws `ServerStartError` with the path.
    public func start() async throws -> String {
        let settings = ConnectionSettings(
            maxLineBytes: configuration.maxLineBytes,
            idleTimeout: .nanoseconds(Int64(configuration.idleTimeoutSeconds * 1_000_000_000)))
        let service = self.service
        let logger = self.logger
        let requestIds = self.requestIds
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .childChannelInitializer { [connections, metrics = service.metrics] channel in
                PeerCredentials.read(from: channel).flatMapThrowing { peer in
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineFrameDecoder(maxLineBytes: settings.maxLineBytes)))
                    try channel.pipeline.syncOperations.addHandler(
                        RPCConnectionHandler(service: service, peer: peer, logger: logger, settings: settings, requestIds: requestIds))
                    connections.track(channel)
                    metrics.connectionOpened()
                    channel.closeFuture.whenComplete { _ in metrics.connectionClosed() }
                }
            }
        let channel: Channel
        let path: String
        if let inherited = configuration.inheritedSocket {
            path = "fd \(inherited) (socket activation)"
            do {
                channel = try await bootstrap.withBoundSocket(inherited).get()
            } catch {
                throw ServerStartError(message: "cannot listen on the socket passed by systemd: \(error)")
            }
        } else {
            path = configuration.socketPath
            channel = try await bindUnixSocket(bootstrap, path: path)
        }
        state.withLock { $0 = .listening(channel) }
        logger.info("listening", metadata: ["socket": .string(path)])
        return path
    }

    private func bindUnixSocket(_ bootstrap: ServerBootstrap, path: String) async throws -> Channel {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            } catch {
                throw ServerStartError(message: "cannot create the socket directory \(directory): \(error.localizedDescription)")
            }
        }
        if Self.somethingListens(at: path) {
            throw ServerStartError(message: "another process is already listening on \(path); stop it or choose another --socket")
        }
        // The socket file is created with exactly the configured mode (the umask is its complement,
        // so for 0600 it is ssh-agent's 0177): it is never more open than asked, and it is never less
        // open either, so clients that connect as soon as it exists are not refused.
        let previousMask = umask(~configuration.socketMode & 0o777)
        defer { umask(previousMask) }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        } catch {
            throw ServerStartError(message: "cannot listen on \(path): \(error)")
        }
        guard chmod(path, configuration.socketMode) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            throw ServerStartError(message: "cannot set the mode of \(path): \(reason)")
        }
        return channel
    }


    /// True when a connect to `path` succeeds: a live daemon owns it, and removing the file would
    /// silently cut its clients off. A stale file (connection refused) is replaced.
    static func somethingListens(at path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else { return false }
        guard let address = UnixSocketAddress(Array(path.utf8)) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return address.withSockaddr { connect(fd, $0, $1) } == 0
    }

    /// Serves until graceful shutdown, then shuts down in order. Starts the server first if
    /// `start()` was not called.
    public func run() async throws {
        let listening: Bool = state.withLock {
            if case .listening = $0 { return true }
            return false
        }
        let path = listening ? configuration.socketPath : try await start()
        onReady(path)
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, drains queued writes, closes every connection.
    public func shutdown() async {
        let channel: Channel? = state.withLock { state in
            defer { state = .stopped }
            if case .listening(let channel) = state { return channel }
            return nil
        }
        guard let channel else { return }
        Systemd.notify("STOPPING=1")
        logger.info("shutting down: no new connections; finishing queued writes")
        try? await channel.close()
        // Blocks until every queued write is durable and answered (through its event loop).
        let store = service.store
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let audit = service.audit
            DispatchQueue.global().async {
                store.close()
                audit.close()
                continuation.resume()
            }
        }
        let open = connections.all
        for connection in open {
            // Let answers already handed to the loop go out, then close.
            try? await connection.eventLoop.submit {}.get()
            try? await connection.close()
        }
        if configuration.inheritedSocket == nil {
            unlink(configuration.socketPath)
        }
        logger.info("stopped")
    }
}

/// The open connections, so that shutdown can close them.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: Channel]>([:])

    func track(_ channel: Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = channels.withLock { $0.removeValue(forKey: key) }
        }
    }

    var all: [Channel] { channels.withLock { Array($0.values) } }
}
