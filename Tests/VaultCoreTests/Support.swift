import Foundation
import Logging
import VaultCore
import VaultProtocol

/// A fresh directory under /tmp, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/gxv-core-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Collects log events so tests can assert warnings (and the absence of secrets).
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // @unchecked: `lines` is only touched under `lock`.
    private let lock = NSLock()
    private var lines: [String] = []
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let text = "\(event.level) \(event.message) \(event.metadata ?? [:])"
        lock.withLock { lines.append(text) }
    }

    var all: [String] { lock.withLock { lines } }
}

func makeLogger(_ handler: CapturingLogHandler = CapturingLogHandler()) -> Logger {
    Logger(label: "test") { _ in handler }
}

/// A clock that only moves when told to.
final class ManualClock: @unchecked Sendable {
    // @unchecked: `now` is only touched under `lock`.
    private let lock = NSLock()
    private var now: Int64

    init(_ start: Int64 = 1_795_954_603_000) { now = start }

    func advance(ms: Int64) { lock.withLock { now += ms } }

    var clock: VaultClock { VaultClock { [self] in lock.withLock { Timestamp(millisecondsSinceEpoch: now) } } }
}

func key(_ byte: UInt8) -> MasterKey {
    var bytes = [UInt8](repeating: byte, count: 32)
    return try! MasterKey(wiping: &bytes)
}

func storeParams(_ principal: String, _ service: String, token: String = "tok", metadata: JSONObject? = nil) throws -> StoreCredentialParams {
    var params: JSONObject = ["principalId": .string(principal), "service": .string(service), "accessToken": .string(token)]
    if let metadata { params["metadata"] = .object(metadata) }
    return try StoreCredentialParams(validating: params)
}

func readFile(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

func writeFile(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, subsequence.count <= count else { return false }
        for start in 0...(count - subsequence.count) where self[start] == subsequence[0] {
            if Array(self[start..<(start + subsequence.count)]) == subsequence { return true }
        }
        return false
    }
}
