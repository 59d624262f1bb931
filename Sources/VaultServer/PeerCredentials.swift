import Glibc
import NIOCore
import VaultCore

/// Layout-identical copy of Linux's `struct ucred` (`<sys/socket.h>`), which Glibc's Swift overlay
/// does not export without `_GNU_SOURCE`: `pid_t pid; uid_t uid; gid_t gid;`.
struct PeerCredentialsValue: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

enum PeerCredentials {
    /// `SO_PEERCRED` on Linux (`asm-generic/socket.h`).
    static let optionName: Int32 = 17

    /// Reads the connecting process's pid/uid/gid from the kernel. On the event loop the future is
    /// already complete when returned.
    static func read(from channel: Channel) -> EventLoopFuture<Peer> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        let future: EventLoopFuture<PeerCredentialsValue> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(optionName))
        return future.map { Peer(pid: $0.pid, uid: $0.uid, gid: $0.gid) }
    }
}
