import Foundation
import GrantexVault

/// Where `swift build` put the binaries: next to the test bundle that is running, unless
/// `GXV_BIN_DIR` names another build (for example a `--sanitize=address` one, so that the daemon runs
/// under ASan while this runner does not).
enum Binaries {
    static let directory: String = {
        if let override = ProcessInfo.processInfo.environment["GXV_BIN_DIR"], !override.isEmpty { return override }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // The test runner may be inside `<name>.xctest/`; the binaries sit beside that.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("grantex-vaultd").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }()
    static var daemon: String { directory + "/grantex-vaultd" }
    static var cli: String { directory + "/grantex-vault" }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
}

/// A fresh directory under /tmp (short, so socket paths stay under 108 bytes).
final class Scratch {
    let path: String

    init(mode: mode_t = 0o700) {
        var template = Array("/tmp/gxv-e2e-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil)
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        chmod(path, mode)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The outcome of running a program to completion.
struct Completed {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable` with `arguments`, feeding `stdin`, and waits (bounded) for it to exit.
///
/// Async, and it waits with `Task.sleep`: blocking a cooperative thread here would stall every other
/// test's tasks on a 2-core machine (and make connections look idle to the daemon).
func run(
    _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
    workingDirectory: String? = nil, timeout: TimeInterval = 30
) async throws -> Completed {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["GRANTEX_VAULT_SOCKET"] = nil
    env["GRANTEX_GRANT_TOKEN"] = nil
    for (key, value) in environment { env[key] = value }
    process.environment = env
    if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    // Drain both pipes while waiting, so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
    if process.isRunning {
        process.terminate()
        throw HarnessError(description: "\(executable) \(arguments) did not finish in \(timeout)s")
    }
    await withCheckedContinuation { continuation in group.notify(queue: .global()) { continuation.resume() } }
    return Completed(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs the CLI; `asNobody` runs it as uid/gid 65534 through `setpriv`.
func cli(_ arguments: [String], socket: String?, stdin: String? = nil, environment: [String: String] = [:], asNobody: Bool = false) async throws -> Completed {
    var args = arguments
    if let socket { args = ["--socket", socket] + args }
    if asNobody {
        return try await run("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", Binaries.cli] + args, stdin: stdin, environment: environment)
    }
    return try await run(Binaries.cli, args, stdin: stdin, environment: environment)
}

/// A value shared between test tasks.
final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try lock.withLock { try body(&value) }
    }
}

/// A real `grantex-vaultd` on a temporary socket and state directory.
///
/// `@unchecked Sendable`: tests share it with child tasks that only read its immutable paths
/// (`client()`), while one task at a time starts or stops the process.
final class Daemon: @unchecked Sendable {
    let scratch: Scratch
    let socketPath: String
    let stateDirectory: String
    let keyFile: String
    let logPath: String
    private(set) var process: Process?
    let extraArguments: [String]
    /// Replaces `extraArguments` for later starts (tests that write files into the scratch first).
    var extraArgumentsOverride: [String]?

    /// Extra environment variables of the daemon process.
    var environment: [String: String] = [:]

    private init(arguments: [String], scratchMode: mode_t, keyFile: String?) {
        scratch = Scratch(mode: scratchMode)
        socketPath = scratch.file("vaultd.sock")
        stateDirectory = scratch.file("state")
        logPath = scratch.file("daemon.log")
        extraArguments = arguments
        self.keyFile = keyFile ?? scratch.file("vault.key")
    }

    /// Creates a key with `grantex-vault keygen` (unless `keyFile` is given) and starts the daemon.
    static func started(
        arguments: [String] = [], scratchMode: mode_t = 0o700, keyFile: String? = nil, environment: [String: String] = [:]
    ) async throws -> Daemon {
        let daemon = Daemon(arguments: arguments, scratchMode: scratchMode, keyFile: keyFile)
        daemon.environment = environment
        if keyFile == nil {
            let keygen = try await run(Binaries.cli, ["keygen", daemon.keyFile])
            guard keygen.status == 0 else { throw HarnessError(description: "keygen failed: \(keygen.stderr)") }
        }
        try await daemon.start()
        return daemon
    }

    var arguments: [String] {
        ["--socket", socketPath, "--state-dir", stateDirectory, "--key-file", keyFile, "--log-level", "debug"]
            + (extraArgumentsOverride ?? extraArguments)
    }

    /// Starts the daemon and waits until its socket accepts connections.
    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.daemon)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC", "WATCHDOG_PID"] { env[key] = nil }
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process.standardError = log
        process.standardOutput = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !process.isRunning {
                throw HarnessError(description: "grantex-vaultd exited with \(process.terminationStatus): \(log_)")
            }
            if RawConnection.canConnect(socketPath) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError(description: "grantex-vaultd did not listen within 20s: \(log_)")
    }

    private var log_: String { self.log }

    /// Everything the daemon wrote to stderr/stdout.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var pid: Int32? { process?.processIdentifier }

    /// Sends `signal` without waiting.
    func signal(_ signal: Int32) throws {
        guard let process else { throw HarnessError(description: "not running") }
        kill(process.processIdentifier, signal)
    }

    /// Sends `signal` and waits for the exit; returns the exit status (or 128 + signal).
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 20) async throws -> Int32 {
        guard let process else { return -1 }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        guard !process.isRunning else { throw HarnessError(description: "grantex-vaultd ignored signal \(signal)") }
        self.process = nil
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    func client() -> GrantexVaultClient { GrantexVaultClient(socketPath: socketPath) }

    deinit {
        // SIGKILL only: Foundation's waitUntilExit() spins forever when called on another thread
        // than the one that launched the process, and Foundation reaps the child itself.
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A blocking Unix-socket connection for byte-level protocol tests.
final class RawConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard Self.connect(fd, path) else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HarnessError(description: "connect \(path): \(reason)")
        }
    }

    static func canConnect(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return connect(fd, path)
    }

    private static func connect(_ fd: Int32, _ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError(description: "send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// The next line, or nil at EOF; throws after `timeout` seconds without one.
    func readLine(timeout: TimeInterval = 10) throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError(description: "no line within \(timeout)s") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000)) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { return nil }
            buffer += chunk[..<n]
        }
    }

    /// The next line parsed as a JSON object.
    func readJSON(timeout: TimeInterval = 10) throws -> JSONObject {
        guard let line = try readLine(timeout: timeout) else { throw HarnessError(description: "EOF instead of an answer") }
        guard case .object(let object) = try JSONParser.parse(line) else { throw HarnessError(description: "not an object: \(line)") }
        return object
    }

    /// Sends a request object and reads the answer.
    func call(_ request: String) throws -> JSONObject {
        try send(request + "\n")
        return try readJSON()
    }

    /// True when the daemon closes the connection within `timeout` seconds (no more lines).
    func closesWithin(_ timeout: TimeInterval) -> Bool {
        (try? readLine(timeout: timeout)) == .some(nil)
    }

    deinit { close(fd) }
}

extension JSONObject {
    /// `error.data.code` of an answer.
    var errorCode: String? { self["error"]?.objectValue?["data"]?.objectValue?["code"]?.stringValue }
    var errorRPCCode: Int64? { self["error"]?.objectValue?["code"]?.int64Value }
    var requestId: String? { self["error"]?.objectValue?["data"]?.objectValue?["requestId"]?.stringValue }
    var result: JSONObject? { self["result"]?.objectValue }
}
