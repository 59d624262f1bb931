import ArgumentParser
import Crypto
import CryptoExtras
import Foundation
import VaultCore
import VaultProtocol

/// `grantex-vault-bench`: loads a real grantex-vaultd over its real socket and measures, in the same
/// run, the anchors it is compared with (Redis over a Unix socket, an echo round trip,
/// `openssl speed rsa2048`). Prints figures and ratios; asserts nothing (timings are not tests).
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grantex-vault-bench", abstract: "Benchmark grantex-vaultd against Redis and the machine's limits.")

    @Option(help: "The daemon binary (default: next to this one).") var daemon: String?
    @Option(help: "Seconds per measured run.") var duration = 3.0
    @Option(help: "Connection counts, comma separated.") var connections = "1,16,64"
    @Option(help: "Scenarios: warm, cold, store, get, list (comma separated).") var scenarios = "warm,cold,store,get,list"
    @Option(help: "Pre-signed tokens for the cold-exchange runs.") var coldTokens = 30_000
    @Flag(help: "Skip Redis, echo and openssl anchors.") var noAnchors = false
    @Flag(help: "Also measure with 100,000 credentials: start time, RSS, store latency.") var large = false
    @Option(help: "Credentials in the large run.") var largeCount = 100_000

    func run() throws {
        let binary = daemon ?? (URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path + "/grantex-vaultd")
        let bench = try BenchRun(daemonBinary: binary, duration: duration)
        defer { bench.cleanUp() }
        let counts = connections.split(separator: ",").compactMap { Int($0) }
        let wanted = Set(scenarios.split(separator: ",").map(String.init))
        var rows: [(String, Int, RunResult)] = []
        try bench.startDaemon()
        try bench.prepare(credentials: 1000, coldTokens: wanted.contains("cold") ? coldTokens : 0)
        for scenario in ["warm", "cold", "store", "get", "list"] where wanted.contains(scenario) {
            for count in counts {
                let result = try bench.measure(scenario, connections: count)
                rows.append((scenario, count, result))
                print(String(format: "%-6@ %3d conns  %9.0f req/s  p50 %7.1f µs  p99 %8.1f µs  p99.9 %8.1f µs  errors %d",
                             scenario as NSString, count, result.throughput, result.percentile(0.5), result.percentile(0.99),
                             result.percentile(0.999), result.errors))
            }
        }
        bench.stopDaemon()
        var anchors = Anchors()
        if !noAnchors { anchors = bench.measureAnchors() }
        var largeFigures: LargeFigures? = nil
        if large { largeFigures = try bench.measureLarge(count: largeCount) }
        Report(rows: rows, anchors: anchors, large: largeFigures).print()
    }
}

struct Anchors {
    var redisGet16: Double?
    var redisSetAlways64: Double?
    var redisSetAlways1: Double?
    var echo1: RunResult?
    /// The same client against the echo server with 16 connections: what the client itself allows.
    var echo16: RunResult?
    var opensslVerify: Double?
}

struct LargeFigures {
    var count: Int
    var readySeconds: Double
    var rssMegabytes: Double
    var storeP50Small: Double
    var storeP50Large: Double
}

/// One benchmark session: a scratch directory, keys, a daemon.
final class BenchRun {
    let daemonBinary: String
    let duration: Double
    let directory: String
    var socketPath: String { directory + "/vaultd.sock" }
    private var process: Process?
    private let signingKey: _RSA.Signing.PrivateKey
    private var warmToken = ""
    private var coldTokens: [[UInt8]] = []
    private var ids: [String] = []
    private var run = 0

    init(daemonBinary: String, duration: Double) throws {
        self.daemonBinary = daemonBinary
        self.duration = duration
        var template = Array("/tmp/gxv-bench-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { throw BenchError("mkdtemp") }
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        signingKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        try KeyFile.generate(path: directory + "/vault.key")
        let primitives = try signingKey.publicKey.getKeyPrimitives()
        let jwks: JSONValue = .object(["keys": [.object([
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench",
            "n": .string(Base64URL.encode(primitives.modulus)), "e": .string(Base64URL.encode(primitives.publicExponent)),
        ])]])
        try Data(jwks.jsonBytes).write(to: URL(fileURLWithPath: directory + "/jwks.json"))
    }

    func cleanUp() {
        stopDaemon()
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: daemon

    func startDaemon(stateName: String = "state") throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: daemonBinary)
        process.arguments = [
            "--socket", socketPath, "--state-dir", directory + "/" + stateName, "--key-file", directory + "/vault.key",
            "--jwks", directory + "/jwks.json", "--developer-id", "dev_bench", "--log-level", "error",
            "--exchange-failure-burst", "1000000", "--idle-timeout", "3600",
        ]
        process.standardError = FileHandle.standardError
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let connection = try? BenchConnection(path: socketPath) {
                try connection.send(Array(#"{"jsonrpc":"2.0","id":1,"method":"system.health"}"#.utf8) + [0x0A])
                if (try? connection.readAnswer()) == true { return }
            }
            guard process.isRunning else { throw BenchError("grantex-vaultd exited with \(process.terminationStatus)") }
            usleep(2_000)
        }
        throw BenchError("grantex-vaultd did not become ready")
    }

    func stopDaemon() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        while process.isRunning { usleep(5_000) }
        self.process = nil
    }

    var daemonPid: Int32? { process?.processIdentifier }

    // MARK: setup

    func token(jti: String) -> String { Self.token(jti: jti, key: signingKey) }

    static func token(jti: String, key signingKey: _RSA.Signing.PrivateKey) -> String {
        let now = Int64(Date().timeIntervalSince1970)
        let header: JSONObject = ["alg": "RS256", "typ": "JWT", "kid": "bench"]
        let claims: JSONObject = [
            "iss": "https://grantex.dev", "sub": "bench_user", "agt": "agent_bench", "dev": "dev_bench", "scp": ["github:read"],
            "jti": .string(jti), "iat": .int(now), "exp": .int(now + 3600),
        ]
        let input = Base64URL.encode(header.jsonBytes) + "." + Base64URL.encode(claims.jsonBytes)
        let signature = try! signingKey.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }

    static func exchangeLine(_ token: String) -> [UInt8] {
        Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.exchange","params":{"grantToken":"\#(token)","service":"github"}}"#.utf8) + [0x0A]
    }

    func prepare(credentials: Int, coldTokens count: Int) throws {
        let connection = try BenchConnection(path: socketPath)
        try connection.send(Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":{"principalId":"bench_user","service":"github","accessToken":"gho_benchmark_token_0123456789abcdef"}}"#.utf8) + [0x0A])
        guard try connection.readAnswer() else { throw BenchError("could not store the benchmark credential") }
        ids = try storeMany(prefix: "prep", count: credentials)
        warmToken = token(jti: "warm")
        // Cold tokens: every exchange presents a token the daemon has never seen. Signed up front
        // on every core; not part of any measurement.
        let threads = ProcessInfo.processInfo.activeProcessorCount
        final class Box: @unchecked Sendable {  // @unchecked: each thread fills its own slot
            var parts: [[[UInt8]]]
            init(_ n: Int) { parts = Array(repeating: [], count: n) }
        }
        let box = Box(threads)
        let key = signingKey
        DispatchQueue.concurrentPerform(iterations: threads) { part in
            var mine: [[UInt8]] = []
            for index in stride(from: part, to: count, by: threads) { mine.append(Self.exchangeLine(Self.token(jti: "cold-\(index)", key: key))) }
            box.parts[part] = mine
        }
        coldTokens = box.parts.flatMap { $0 }
    }

    /// Stores `count` credentials fast (batches over a few connections); returns their ids.
    func storeMany(prefix: String, count: Int) throws -> [String] {
        let batch = 200
        let lanes = 4
        final class Ids: @unchecked Sendable {  // @unchecked: each lane writes its own slot
            var lanes: [[String]]
            var failure: String?
            init(_ n: Int) { lanes = Array(repeating: [], count: n) }
        }
        let collected = Ids(lanes)
        let path = socketPath
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            do {
                let connection = try BenchConnection(path: path)
                var index = lane * batch
                while index < count {
                    let upper = min(index + batch, count)
                    let requests = (index..<upper).map { n in
                        #"{"jsonrpc":"2.0","id":\#(n),"method":"vault.store","params":{"principalId":"\#(prefix)-\#(n)","service":"svc","accessToken":"tok-\#(n)-abcdefghijklmnopqrstuvwxyz"}}"#
                    }
                    try connection.send(Array(("[" + requests.joined(separator: ",") + "]\n").utf8))
                    let line = try connection.readLine()
                    guard case .array(let answers) = try JSONParser.parse(line) else { throw BenchError("bad batch answer") }
                    for answer in answers {
                        guard let id = answer.objectValue?["result"]?.objectValue?["id"]?.stringValue else { throw BenchError("store failed: \(answer.jsonString.prefix(200))") }
                        collected.lanes[lane].append(id)
                    }
                    index += batch * lanes
                }
            } catch {
                collected.failure = "\(error)"
            }
        }
        if let failure = collected.failure { throw BenchError(failure) }
        return collected.lanes.flatMap { $0 }
    }

    // MARK: runs

    func measure(_ scenario: String, connections: Int) throws -> RunResult {
        run += 1
        let runNumber = run
        let request: @Sendable (Int, Int) -> [UInt8]?
        switch scenario {
        case "warm":
            let line = Self.exchangeLine(warmToken)
            request = { _, _ in line }
        case "cold":
            final class Cursor: @unchecked Sendable {  // @unchecked: guarded by `lock`
                let lock = NSLock()
                var next = 0
            }
            let cursor = Cursor()
            let tokens = coldTokens
            request = { _, _ in
                let index = cursor.lock.withLock { () -> Int in
                    defer { cursor.next += 1 }
                    return cursor.next
                }
                return index < tokens.count ? tokens[index] : nil
            }
        case "store":
            request = { connection, n in
                Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":{"principalId":"r\#(runNumber)-c\#(connection)-\#(n)","service":"github","accessToken":"gho_0123456789abcdefghijklmnopqrstuvwxyz"}}"#.utf8) + [0x0A]
            }
        case "get":
            let lines = ids.map { Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.get","params":{"id":"\#($0)"}}"#.utf8) + [0x0A] }
            request = { connection, n in lines[(connection &* 7919 &+ n) % lines.count] }
        case "list":
            let line = Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.list","params":{"limit":10}}"#.utf8) + [0x0A]
            request = { _, _ in line }
        default:
            throw BenchError("unknown scenario \(scenario)")
        }
        return try runLoad(socketPath: socketPath, connections: connections, duration: duration, request: request)
    }

    // MARK: anchors

    func measureAnchors() -> Anchors {
        var anchors = Anchors()
        if let redisServer = which("redis-server"), let redisBenchmark = which("redis-benchmark") {
            let requests = max(20_000, Int(duration * 60_000))
            anchors.redisGet16 = redis(server: redisServer, benchmark: redisBenchmark, durable: false, test: "get", clients: 16, requests: requests)
            anchors.redisSetAlways64 = redis(server: redisServer, benchmark: redisBenchmark, durable: true, test: "set", clients: 64, requests: requests / 2)
            anchors.redisSetAlways1 = redis(server: redisServer, benchmark: redisBenchmark, durable: true, test: "set", clients: 1, requests: requests / 20)
        } else {
            FileHandle.standardError.write(Data("bench: redis-server/redis-benchmark not found; run scripts/bench.sh to install them\n".utf8))
        }
        if let echo = try? EchoServer(path: directory + "/echo.sock") {
            // A line the size of a warm exchange request, echoed back.
            let line = Array(#"{"jsonrpc":"2.0","id":1,"result":"\#(String(repeating: "x", count: Self.exchangeLine(warmToken).count - 40))"}"#.utf8) + [0x0A]
            anchors.echo1 = try? runLoad(socketPath: echo.path, connections: 1, duration: duration) { _, _ in line }
            anchors.echo16 = try? runLoad(socketPath: echo.path, connections: 16, duration: duration) { _, _ in line }
            echo.stop()
        }
        if let openssl = which("openssl") {
            let output = capture(openssl, ["speed", "-seconds", String(max(1, Int(duration))), "rsa2048"])
            // "rsa 2048 bits 0.000613s 0.000017s   1631.5  57900.2"
            if let line = output.split(separator: "\n").last(where: { $0.hasPrefix("rsa 2048 bits") }),
                let verify = line.split(separator: " ").last.flatMap({ Double($0) })
            {
                anchors.opensslVerify = verify
            }
        }
        return anchors
    }

    private func redis(server: String, benchmark: String, durable: Bool, test: String, clients: Int, requests: Int) -> Double? {
        let socket = directory + "/redis.sock"
        // A fresh directory per run: an AOF left by the previous run would be loaded first.
        let dataDirectory = directory + "/redis-\(test)-\(clients)-\(durable ? "aof" : "mem")"
        try? FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        unlink(socket)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [
            "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "", "--dir", dataDirectory,
            "--appendonly", durable ? "yes" : "no", "--appendfsync", durable ? "always" : "everysec", "--daemonize", "no",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        defer {
            process.terminate()
            while process.isRunning { usleep(5_000) }
        }
        for _ in 0..<500 {
            if let connection = try? BenchConnection(path: socket) {
                try? connection.send(Array("PING\r\n".utf8))
                if let reply = try? connection.readLine(), reply.starts(with: Array("+PONG".utf8)) { break }
            }
            usleep(10_000)
        }
        let output = capture(benchmark, ["-s", socket, "-t", test, "-c", String(clients), "-n", String(requests), "-q"])
        // "GET: 97087.38 requests per second, p50=0.087 msec"
        guard let line = output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).last(where: { $0.uppercased().hasPrefix(test.uppercased() + ":") }),
            let number = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return nil }
        return number
    }

    // MARK: 100,000 credentials

    func measureLarge(count: Int) throws -> LargeFigures {
        // Store latency with 1,000 credentials, then with `count`, in fresh stores, one connection.
        func storeP50() throws -> Double {
            run += 1
            let runNumber = run
            return try runLoad(socketPath: socketPath, connections: 1, duration: duration) { _, n in
                Array(#"{"jsonrpc":"2.0","id":1,"method":"vault.store","params":{"principalId":"lat\#(runNumber)-\#(n)","service":"github","accessToken":"gho_0123456789abcdefghijklmnopqrstuvwxyz"}}"#.utf8) + [0x0A]
            }.percentile(0.5)
        }
        try startDaemon(stateName: "small")
        _ = try storeMany(prefix: "small", count: 1000)
        let small = try storeP50()
        stopDaemon()
        try startDaemon(stateName: "large")
        _ = try storeMany(prefix: "large", count: count)
        stopDaemon()
        let started = monotonicNanos()
        try startDaemon(stateName: "large")
        let ready = Double(monotonicNanos() - started) / 1e9
        let largeP50 = try storeP50()
        var rss = 0.0
        if let pid = daemonPid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        {
            rss = kilobytes / 1024
        }
        stopDaemon()
        return LargeFigures(count: count, readySeconds: ready, rssMegabytes: rss, storeP50Small: small, storeP50Large: largeP50)
    }
}

func which(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

func capture(_ executable: String, _ arguments: [String]) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    guard (try? process.run()) != nil else { return "" }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    while process.isRunning { usleep(5_000) }
    return String(decoding: data, as: UTF8.self)
}
