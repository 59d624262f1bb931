import Glibc
import NIOCore

/// The two systemd protocols the daemon speaks, without libsystemd: readiness notification
/// (`sd_notify(3)`: a datagram to `$NOTIFY_SOCKET`) and socket activation (`sd_listen_fds(3)`).
public enum Systemd {
    /// Sends `state` (e.g. `READY=1`) to the service manager; a no-op outside systemd.
    /// Abstract socket names (`@...`) are supported.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        guard let raw = getenv("NOTIFY_SOCKET") else { return false }
        var path = Array(String(cString: raw).utf8)
        guard !path.isEmpty, path[0] == UInt8(ascii: "/") || path[0] == UInt8(ascii: "@") else { return false }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }
        guard let address = UnixSocketAddress(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let message = Array(state.utf8)
        let sent = address.withSockaddr { pointer, length in
            message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), pointer, length) }
        }
        return sent == message.count
    }

    /// Why an inherited socket cannot be used.
    public struct ActivationError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The listening socket passed by systemd socket activation, if `LISTEN_PID` names this process
    /// and `LISTEN_FDS` is at least 1 (the first one, fd 3, is used), after checking that it is a
    /// listening Unix stream socket. The variables are removed so that child processes do not
    /// inherit them.
    public static func takeListeningSocket() throws(ActivationError) -> Int32? {
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), let pid = Int32(pidText), pid == getpid(),
            let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int(countText), count >= 1
        else { return nil }
        let fd: Int32 = 3
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        // SO_DOMAIN 39, SO_TYPE 3, SO_ACCEPTCONN 30 (asm-generic/socket.h).
        guard option(39) == AF_UNIX, option(3) == Int32(SOCK_STREAM.rawValue), option(30) == 1 else {
            throw ActivationError(message: "LISTEN_FDS passed fd 3, but it is not a listening Unix stream socket")
        }
        return fd
    }

    /// Sends `WATCHDOG=1` every half of `$WATCHDOG_USEC` from `loop`, when systemd asks for it
    /// (`WatchdogSec=`). Pinging from an event loop means a stuck loop stops the pings.
    public static func startWatchdog(on loop: EventLoop) -> RepeatedTask? {
        guard let text = getenv("WATCHDOG_USEC").map({ String(cString: $0) }), let usec = Int64(text), usec > 0 else { return nil }
        if let pid = getenv("WATCHDOG_PID").map({ String(cString: $0) }), Int32(pid) != getpid() { return nil }
        let interval = TimeAmount.microseconds(max(usec / 2, 1000))
        return loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { _ in notify("WATCHDOG=1") }
    }
}
