import Foundation

/// A blocking Unix-socket connection for the load generator: one request line out, one answer
/// line in, timed. Blocking I/O on a thread per connection keeps the client's own overhead small
/// and predictable (as redis-benchmark's is), which matters because it shares the machine.
final class BenchConnection {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var end = 0

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard withUnixAddress(path, { connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw BenchError("connect \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw BenchError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Reads one line; returns whether it holds a JSON-RPC `result` (else it was an error).
    func readAnswer() throws -> Bool {
        let line = try nextLine()
        // `{"jsonrpc":"2.0","id":1,"result"` vs `...,"error"`: look for `"result"` near the start.
        let window = buffer[line.lowerBound..<min(line.upperBound, line.lowerBound + 48)]
        return window.count >= 8 && containsResult(window)
    }

    /// Reads one whole line (for batch answers).
    func readLine() throws -> [UInt8] {
        Array(buffer[try nextLine()])
    }

    /// The range of the next line in `buffer`, valid until the next read.
    private func nextLine() throws -> Range<Int> {
        var scanned = start
        while true {
            if let newline = buffer[scanned..<end].firstIndex(of: 0x0A) {
                let line = start..<newline
                start = newline + 1
                return line
            }
            scanned = end
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                scanned -= start
                end -= start
                start = 0
            }
            if end == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + end, $0.count - end, 0) }
            guard n > 0 else { throw BenchError("the daemon closed the connection") }
            end += n
        }
    }

    private func containsResult(_ window: ArraySlice<UInt8>) -> Bool {
        let needle = Array("\"result\"".utf8)
        guard window.count >= needle.count else { return false }
        var index = window.startIndex
        while index + needle.count <= window.endIndex {
            if window[index..<(index + needle.count)].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What one measured run produced.
struct RunResult {
    var requests: Int
    var errors: Int
    var seconds: Double
    /// Latencies in nanoseconds, sorted.
    var latencies: [UInt64]

    var throughput: Double { Double(requests) / seconds }

    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return 0 }
        let index = min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1)
        return Double(latencies[max(0, index)]) / 1000  // µs
    }
}

/// Runs `connections` closed-loop clients for `duration` seconds (or until `request` returns nil).
/// `request(connection, n)` gives the bytes of the n-th request of that connection.
func runLoad(
    socketPath: String, connections: Int, duration: Double, request: @escaping @Sendable (Int, Int) -> [UInt8]?
) throws -> RunResult {
    final class Shared: @unchecked Sendable {
        // @unchecked: each thread writes only its own slot, read after all threads finished.
        var latencies: [[UInt64]]
        var counts: [Int]
        var errors: [Int]
        var failures: [String?]
        init(_ n: Int) {
            latencies = Array(repeating: [], count: n)
            counts = Array(repeating: 0, count: n)
            errors = Array(repeating: 0, count: n)
            failures = Array(repeating: nil, count: n)
        }
    }
    let shared = Shared(connections)
    var sockets: [BenchConnection] = []
    for _ in 0..<connections { sockets.append(try BenchConnection(path: socketPath)) }
    let group = DispatchGroup()
    let begin = monotonicNanos()
    let deadline = begin + UInt64(duration * 1e9)
    for index in 0..<connections {
        nonisolated(unsafe) let connection = sockets[index]
        group.enter()
        let thread = Thread {
            var local: [UInt64] = []
            local.reserveCapacity(1 << 16)
            var n = 0
            var errors = 0
            do {
                while monotonicNanos() < deadline, let bytes = request(index, n) {
                    let sent = monotonicNanos()
                    try connection.send(bytes)
                    if !(try connection.readAnswer()) { errors += 1 }
                    local.append(monotonicNanos() - sent)
                    n += 1
                }
            } catch {
                shared.failures[index] = "\(error)"
            }
            shared.latencies[index] = local
            shared.counts[index] = n
            shared.errors[index] = errors
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
    let seconds = Double(monotonicNanos() - begin) / 1e9
    if let failure = shared.failures.compactMap({ $0 }).first { throw BenchError(failure) }
    let all = shared.latencies.flatMap { $0 }.sorted()
    return RunResult(requests: shared.counts.reduce(0, +), errors: shared.errors.reduce(0, +), seconds: seconds, latencies: all)
}

/// Calls `body` with a `sockaddr_un` for `path` (which must fit `sun_path`).
func withUnixAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return -1 }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// A minimal line echo server on a Unix socket, one thread per connection: the physical floor of
/// a request/response round trip through the kernel on this machine.
final class EchoServer: @unchecked Sendable {
    // @unchecked: `listener` is set once in init; threads only read it.
    let path: String
    private let listener: Int32

    init(path: String) throws {
        self.path = path
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let fd = listener
        guard withUnixAddress(path, { bind(fd, $0, $1) }) == 0, listen(listener, 64) == 0 else { throw BenchError("echo server: \(String(cString: strerror(errno)))") }
        Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                Thread {
                    var buffer = [UInt8](repeating: 0, count: 65_536)
                    while true {
                        let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress!, $0.count, 0) }
                        if n <= 0 { break }
                        _ = buffer.withUnsafeBytes { Glibc.send(client, $0.baseAddress!, n, Int32(MSG_NOSIGNAL)) }
                    }
                    close(client)
                }.start()
            }
        }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }
}
