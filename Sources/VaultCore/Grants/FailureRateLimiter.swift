import Synchronization
import VaultProtocol

/// A token bucket per peer uid for *failed* exchanges: `burst` failures at once, then `perSecond`.
///
/// Only failures spend tokens, and a request is only ever refused for the limit after it has
/// failed on its own merits, so a successful exchange is never limited. What the limit stops is a
/// peer hammering the vault with bad tokens (audit-log flooding, key probing).
public final class FailureRateLimiter: Sendable {
    public static let defaultBurst = 20.0
    public static let defaultPerSecond = 5.0
    /// Uids tracked at most; the map is emptied of full buckets past this.
    static let maxTrackedPeers = 10_000

    private struct Bucket {
        var tokens: Double
        var updatedMs: Int64
    }

    private let burst: Double
    private let perSecond: Double
    private let buckets = Mutex<[UInt32: Bucket]>([:])

    public init(burst: Double = defaultBurst, perSecond: Double = defaultPerSecond) {
        self.burst = burst
        self.perSecond = perSecond
    }

    /// Records a failure by `uid` at `now`: nil when the failure may be reported as it is, else the
    /// milliseconds until the next failure will be.
    public func recordFailure(uid: UInt32, now: Timestamp) -> Int? {
        let nowMs = now.millisecondsSinceEpoch
        return buckets.withLock { map in
            if map.count > Self.maxTrackedPeers {
                map = map.filter { refill($0.value, nowMs).tokens < burst }
            }
            var bucket = refill(map[uid] ?? Bucket(tokens: burst, updatedMs: nowMs), nowMs)
            defer { map[uid] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / perSecond * 1000).rounded(.up)))
        }
    }

    private func refill(_ bucket: Bucket, _ nowMs: Int64) -> Bucket {
        let elapsed = Double(max(0, nowMs - bucket.updatedMs)) / 1000
        return Bucket(tokens: min(burst, bucket.tokens + elapsed * perSecond), updatedMs: nowMs)
    }
}
