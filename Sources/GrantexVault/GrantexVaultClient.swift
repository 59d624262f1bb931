@_exported import VaultProtocol
import NIOCore
import NIOPosix
import Synchronization

/// The transport failed: the daemon could not be reached, or the connection broke.
public enum VaultConnectionError: Error, Sendable, CustomStringConvertible {
    /// Nothing listens at the socket path (or it cannot be opened).
    case cannotConnect(path: String, reason: String)
    /// The daemon closed the connection before answering.
    case connectionClosed(String)
    /// The daemon sent something that is not a JSON-RPC answer.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .cannotConnect(let path, let reason): return "cannot connect to the daemon at \(path): \(reason)"
        case .connectionClosed(let path): return "the daemon at \(path) closed the connection before answering"
        case .protocolViolation(let detail): return "the daemon broke the protocol: \(detail)"
        }
    }
}

/// A client of `grantex-vaultd` over its Unix socket: the Swift face of the Grantex SDK's
/// `client.vault`.
///
/// One connection is opened on first use and reused by every call; calls from many tasks are
/// pipelined on it and answered in order. If the daemon closes it (idle timeout, restart), the
/// next call reconnects.
///
/// ```swift
/// let client = GrantexVaultClient(socketPath: "/run/grantex-vault/vaultd.sock")
/// let stored = try await client.vault.store(
///     StoreCredentialParams(principalId: "user_123", service: "github", accessToken: token))
/// let page = try await client.vault.list(ListVaultCredentialsParams(principalId: "user_123"))
/// let credential = try await client.vault.get(stored.id)
/// let upstream = try await client.vault.exchange(
///     grantToken: grantToken, params: ExchangeCredentialParams(service: "github"))
/// try await client.vault.delete(stored.id)
/// await client.close()
/// ```
///
/// Errors: a `VaultError` when the daemon answers with an error (its `code`, `message`, and
/// `requestId` to find the daemon's log line), a `VaultConnectionError` when the transport fails.
public final class GrantexVaultClient: Sendable {
    /// The default socket of `grantex-vaultd`.
    public static let defaultSocketPath = "/run/grantex-vault/vaultd.sock"

    public let socketPath: String
    private let group: EventLoopGroup
    private enum ConnectionState {
        case idle
        case connecting(EventLoopFuture<Channel>)
        case connected(Channel)
    }

    private let connection = Mutex<ConnectionState>(.idle)
    private let nextId = Atomic<Int64>(1)

    /// A client of the daemon listening at `socketPath`. No connection is made until the first call.
    public init(socketPath: String = GrantexVaultClient.defaultSocketPath, eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.socketPath = socketPath
        self.group = eventLoopGroup
    }

    /// The credential vault: `store`, `list`, `get`, `delete`, `exchange`.
    public var vault: Vault { Vault(client: self) }

    /// `system.health`: `{"status":"ok","version":...}`; open to every peer.
    public func health() async throws -> JSONObject {
        try await call(RPCMethod.health).objectValue ?? JSONObject()
    }

    /// `system.status`: version, uptime, credential count, store path, issuer, key ids; admins only.
    public func status() async throws -> JSONObject {
        try await call(RPCMethod.status).objectValue ?? JSONObject()
    }

    /// Calls any method and returns its `result`. Throws `VaultError` for an error answer.
    ///
    /// If a reused connection turns out to have been closed by the daemon (its idle timeout can
    /// fire just as a request is sent; the daemon never runs a request it did not read), the call is
    /// retried once on a fresh connection. `vault.delete` is not retried: after a daemon crash its
    /// retry could report `NOT_FOUND` for a delete that did happen.
    public func call(_ method: String, params: JSONObject? = nil) async throws -> JSONValue {
        var attempt = 0
        while true {
            attempt += 1
            let (channel, fresh) = try await connectedChannel()
            do {
                return try await call(method, params: params, on: channel)
            } catch NotSent.closed where attempt < 3 {
                continue  // the request never left this process: retrying cannot run it twice
            } catch NotSent.closed {
                throw VaultConnectionError.connectionClosed(socketPath)
            } catch VaultConnectionError.connectionClosed where !fresh && attempt == 1 && method != RPCMethod.delete {
                continue
            }
        }
    }

    /// A request that could not be written because the connection was already closed.
    private enum NotSent: Error {
        case closed
    }

    private func call(_ method: String, params: JSONObject?, on channel: Channel) async throws -> JSONValue {
        let id = nextId.add(1, ordering: .relaxed).oldValue
        let request = RPCRequest(id: .int(id), method: method, params: params)
        var bytes = request.json.jsonBytes
        bytes.append(UInt8(ascii: "\n"))
        guard channel.isActive else { throw NotSent.closed }
        let promise = channel.eventLoop.makePromise(of: JSONValue.self)
        let outgoing = OutgoingRequest(line: channel.allocator.buffer(bytes: bytes), expectedId: id, promise: promise)
        channel.writeAndFlush(outgoing).whenFailure { error in
            promise.fail((error as? ChannelError) == .ioOnClosedChannel ? NotSent.closed : error)
        }
        let answer: JSONValue
        do {
            answer = try await promise.futureResult.get()
        } catch let error as VaultConnectionError {
            throw error
        } catch let error as VaultError {
            throw error
        } catch NotSent.closed {
            throw NotSent.closed
        } catch {
            throw VaultConnectionError.connectionClosed(socketPath)
        }
        switch try RPCResponse.parse(answer).result {
        case .success(let result): return result
        case .failure(let error): throw error
        }
    }

    /// The open connection, or a new one; `fresh` is true when it was opened by this call.
    private func connectedChannel() async throws -> (channel: Channel, fresh: Bool) {
        enum Next {
            case ready(Channel)
            case wait(EventLoopFuture<Channel>)
        }
        let next: Next = connection.withLock { state in
            switch state {
            case .connected(let channel) where channel.isActive:
                return .ready(channel)
            case .connecting(let future):
                return .wait(future)
            default:
                let path = socketPath
                let future = ClientBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ResponseLineDecoder()))
                            try channel.pipeline.syncOperations.addHandler(ClientChannelHandler(socketPath: path))
                        }
                    }
                    .connect(unixDomainSocketPath: path)
                state = .connecting(future)
                return .wait(future)
            }
        }
        switch next {
        case .ready(let channel):
            return (channel, false)
        case .wait(let future):
            do {
                let channel = try await future.get()
                connection.withLock { state in
                    if case .connecting(let pending) = state, pending === future { state = .connected(channel) }
                }
                return (channel, true)
            } catch {
                connection.withLock { state in
                    if case .connecting(let pending) = state, pending === future { state = .idle }
                }
                throw VaultConnectionError.cannotConnect(path: socketPath, reason: Self.describe(error))
            }
        }
    }

    private static func describe(_ error: Error) -> String {
        if let io = error as? IOError {
            return String(cString: strerror(io.errnoCode))
        }
        return "\(error)"
    }

    /// Closes the connection. Calls made afterwards open a new one.
    public func close() async {
        let previous = connection.withLock { state -> ConnectionState in
            defer { state = .idle }
            return state
        }
        switch previous {
        case .idle: return
        case .connecting(let future): try? await future.get().close()
        case .connected(let channel): try? await channel.close()
        }
    }
}

/// The `client.vault` namespace of the Grantex SDK.
public struct Vault: Sendable {
    let client: GrantexVaultClient

    /// Stores (or replaces) the upstream credential of a principal for a service. Returns once the
    /// daemon has made it durable.
    public func store(_ params: StoreCredentialParams) async throws -> StoreCredentialResponse {
        try StoreCredentialResponse(json: try await client.call(RPCMethod.store, params: params.json))
    }

    /// One page of stored credentials, newest first (never the tokens). Pass `nextCursor` back
    /// as `cursor` for the next page.
    public func list(_ params: ListVaultCredentialsParams = ListVaultCredentialsParams()) async throws -> ListVaultCredentialsResponse {
        try ListVaultCredentialsResponse(json: try await client.call(RPCMethod.list, params: params.json))
    }

    /// Every stored credential matching the filters, following cursors across pages.
    public func listAll(principalId: String? = nil, service: String? = nil, pageSize: Int = 1000) async throws -> [VaultCredential] {
        var all: [VaultCredential] = []
        var cursor: String? = nil
        repeat {
            let page = try await list(ListVaultCredentialsParams(principalId: principalId, service: service, limit: pageSize, cursor: cursor))
            all += page.credentials
            cursor = page.nextCursor
        } while cursor != nil
        return all
    }

    /// One credential's details (never its tokens).
    public func get(_ id: String) async throws -> VaultCredential {
        try VaultCredential(json: try await client.call(RPCMethod.get, params: ["id": .string(id)]))
    }

    /// Deletes a credential; returns once the delete is durable.
    @discardableResult
    public func delete(_ id: String) async throws -> DeleteCredentialResponse {
        try DeleteCredentialResponse(json: try await client.call(RPCMethod.delete, params: ["id": .string(id)]))
    }

    /// Exchanges a Grantex grant token for the upstream access token of the principal it names.
    public func exchange(grantToken: String, params: ExchangeCredentialParams) async throws -> ExchangeCredentialResponse {
        try ExchangeCredentialResponse(
            json: try await client.call(RPCMethod.exchange, params: ["grantToken": .string(grantToken), "service": .string(params.service)]))
    }
}
