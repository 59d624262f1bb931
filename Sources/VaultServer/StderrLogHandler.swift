import Foundation
import Logging
import Synchronization
import VaultProtocol

/// The daemon's log output: one line per event on stderr, which journald keeps.
///
/// `text`: `2026-11-29T12:16:43.373Z info grantex-vaultd: message key=value ...`
/// `json`: `{"time":"...","level":"info","label":"grantex-vaultd","message":"...","key":"value"}`
///
/// Callers never pass secrets in messages or metadata; this handler does not try to redact.
public struct StderrLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text
        case json
    }

    private static let outputLock = Mutex(())

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let format: Format

    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var clock = timespec()
        clock_gettime(CLOCK_REALTIME, &clock)
        let time = Timestamp(millisecondsSinceEpoch: Int64(clock.tv_sec) * 1000 + Int64(clock.tv_nsec) / 1_000_000).rfc3339
        var line: [UInt8]
        switch format {
        case .text:
            var text = "\(time) \(event.level) \(label): \(event.message)"
            for key in merged.keys.sorted() {
                text += " \(key)=\(Self.quoteIfNeeded("\(merged[key]!)"))"
            }
            line = Array(text.utf8)
        case .json:
            var object: JSONObject = [
                "time": .string(time), "level": .string(event.level.rawValue), "label": .string(label),
                "message": .string("\(event.message)"),
            ]
            for key in merged.keys.sorted() where object[key] == nil { object[key] = .string("\(merged[key]!)") }
            line = object.jsonBytes
        }
        line.append(UInt8(ascii: "\n"))
        Self.outputLock.withLock { _ in
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0, errno == EINTR { continue }
                    if written <= 0 { return }  // stderr gone: nothing sensible left to do with a log line
                    offset += written
                }
            }
        }
    }

    private static func quoteIfNeeded(_ value: String) -> String {
        if !value.isEmpty, !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return value }
        var out = [UInt8]()
        JSONWriter.writeString(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
