import Foundation
import VaultProtocol

/// Where the vault reads the time. Tests inject a fixed or stepping clock instead of sleeping.
public struct VaultClock: Sendable {
    private let read: @Sendable () -> Timestamp

    public init(_ read: @escaping @Sendable () -> Timestamp) {
        self.read = read
    }

    public func now() -> Timestamp { read() }

    /// The system's wall clock.
    public static let system = VaultClock {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(millisecondsSinceEpoch: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}
