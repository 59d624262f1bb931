import Synchronization
import VaultCore
import VaultProtocol

/// Request ids (`req_` + ULID) without a syscall per request: the ULID's 80 "random" bits are a
/// per-process random 40-bit prefix and a 40-bit counter. Ids are unique within the process and
/// across restarts with overwhelming probability, and sort by time.
final class RequestIdGenerator: Sendable {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private let prefix: UInt64
    private let counter = Atomic<UInt64>(0)
    private let clock: VaultClock

    init(clock: VaultClock) {
        self.clock = clock
        let random = Sodium.randomBytes(5)
        prefix = random.reduce(0) { $0 << 8 | UInt64($1) }
    }

    func next() -> String {
        let time = UInt64(max(0, clock.now().millisecondsSinceEpoch)) & 0xFFFF_FFFF_FFFF
        let count = counter.add(1, ordering: .relaxed).newValue & 0xFF_FFFF_FFFF
        var out = [UInt8](repeating: 0, count: 30)
        out[0] = UInt8(ascii: "r")
        out[1] = UInt8(ascii: "e")
        out[2] = UInt8(ascii: "q")
        out[3] = UInt8(ascii: "_")
        // 10 characters of time (50 bits, top 2 zero), then 16 of prefix||counter (80 bits).
        for i in 0..<10 { out[4 + i] = Self.alphabet[Int((time >> UInt64(5 * (9 - i))) & 0x1F)] }
        for i in 0..<8 { out[14 + i] = Self.alphabet[Int((prefix >> UInt64(5 * (7 - i))) & 0x1F)] }
        for i in 0..<8 { out[22 + i] = Self.alphabet[Int((count >> UInt64(5 * (7 - i))) & 0x1F)] }
        return String(decoding: out, as: UTF8.self)
    }
}
