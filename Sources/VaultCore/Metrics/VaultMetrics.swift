import Prometheus
import Synchronization
import VaultProtocol

/// The daemon's metrics, rendered in the Prometheus text format by `system.metrics`.
///
/// Labels carry only method names and error codes, never anything a client chose: an unknown
/// method is counted as `<unknown>`.
public final class VaultMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let requestCounters = Mutex<[String: Counter]>([:])
    private let exchangeDuration: DurationHistogram
    private let fsyncDuration: DurationHistogram
    private let tokenCacheHits: Counter
    private let tokenCacheMisses: Counter
    private let credentials: Gauge
    private let revocations: Gauge
    private let connections: Gauge
    private let auditEntries: Gauge
    private let openConnections = Atomic<Int>(0)

    private static let knownMethods: Set<String> = RPCMethod.management.union([RPCMethod.exchange, RPCMethod.health, RPCMethod.metrics])

    /// `grantex_vault_<metric>_<unit>`.
    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "grantex", subsystem: "vault", metricName: metric, unitName: unit, helpText: help)
    }

    public init() {
        exchangeDuration = registry.makeDurationHistogram(
            descriptor: Self.name("exchange_duration", "seconds", "Time to answer vault.exchange, from request to answer"),
            buckets: [.microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
                      .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250)])
        fsyncDuration = registry.makeDurationHistogram(
            descriptor: Self.name("store_fsync_duration", "seconds", "Time of one store write batch: pwrite plus fdatasync (group commit)"),
            buckets: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                      .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1)])
        tokenCacheHits = registry.makeCounter(descriptor: Self.name("token_cache_hits", "total", "Exchanges served from the verified-token cache"))
        tokenCacheMisses = registry.makeCounter(descriptor: Self.name("token_cache_misses", "total", "Exchanges that had to verify a signature"))
        credentials = registry.makeGauge(descriptor: Self.name("credentials", "", "Stored credentials"))
        revocations = registry.makeGauge(descriptor: Self.name("revocations", "", "Revoked token and grant ids in force"))
        connections = registry.makeGauge(descriptor: Self.name("connections", "", "Open client connections"))
        auditEntries = registry.makeGauge(descriptor: Self.name("audit_entries", "", "Entries in the audit log"))
    }

    /// Counts one answered request.
    public func recordRequest(method: String, code: String?) {
        let methodLabel = Self.knownMethods.contains(method) ? method : "<unknown>"
        let outcome = code ?? "OK"
        let key = methodLabel + "|" + outcome
        let counter = requestCounters.withLock { counters in
            if let existing = counters[key] { return existing }
            let created = registry.makeCounter(
                descriptor: Self.name("requests", "total", "Answered requests by method and outcome (OK or the error's data.code)"),
                labels: [("method", methodLabel), ("outcome", outcome)])
            counters[key] = created
            return created
        }
        counter.increment()
    }

    public func connectionOpened() { openConnections.add(1, ordering: .relaxed) }
    public func connectionClosed() { openConnections.subtract(1, ordering: .relaxed) }

    public func recordExchange(_ duration: Duration) { exchangeDuration.recordNanoseconds(duration.nanoseconds) }
    public func recordFsync(_ duration: Duration) { fsyncDuration.recordNanoseconds(duration.nanoseconds) }
    public func recordTokenCache(hit: Bool) { hit ? tokenCacheHits.increment() : tokenCacheMisses.increment() }

    /// The text exposition, with gauges set from the current state.
    public func render(credentialCount: Int, revokedCount: Int, auditEntryCount: Int) -> String {
        credentials.set(Int64(credentialCount))
        revocations.set(Int64(revokedCount))
        connections.set(Int64(openConnections.load(ordering: .relaxed)))
        auditEntries.set(Int64(auditEntryCount))
        return registry.emitToString()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension DurationHistogram {
    func recordNanoseconds(_ nanoseconds: Int64) { record(.nanoseconds(nanoseconds)) }
}
