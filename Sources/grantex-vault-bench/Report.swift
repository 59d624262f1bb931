import Foundation

/// The summary: our figures, the anchors measured in the same run, and each target as a ratio.
struct Report {
    var rows: [(String, Int, RunResult)]
    var anchors: Anchors
    var large: LargeFigures?

    func figure(_ scenario: String, _ connections: Int) -> RunResult? {
        rows.first { $0.0 == scenario && $0.1 == connections }?.2
    }

    func print() {
        var out = "\n## grantex-vaultd\n\n| scenario | connections | req/s | p50 µs | p99 µs | p99.9 µs | errors |\n|---|---:|---:|---:|---:|---:|---:|\n"
        for (scenario, connections, result) in rows {
            out += String(format: "| %@ | %d | %.0f | %.1f | %.1f | %.1f | %d |\n", scenario as NSString, connections, result.throughput,
                          result.percentile(0.5), result.percentile(0.99), result.percentile(0.999), result.errors)
        }
        out += "\n## Anchors (same run)\n\n| anchor | figure |\n|---|---:|\n"
        func line(_ name: String, _ value: Double?, _ unit: String) {
            out += "| \(name) | " + (value.map { String(format: "%.0f %@", $0, unit as NSString) } ?? "not measured") + " |\n"
        }
        line("redis-benchmark GET, 16 clients, Unix socket", anchors.redisGet16, "req/s")
        line("redis-benchmark SET, appendfsync always, 64 clients", anchors.redisSetAlways64, "req/s")
        line("redis-benchmark SET, appendfsync always, 1 client", anchors.redisSetAlways1, "req/s")
        line("echo round trip, 1 connection", anchors.echo1?.throughput, "req/s")
        line("echo round trip, 16 connections (this tool's client ceiling)", anchors.echo16?.throughput, "req/s")
        line("openssl speed rsa2048 verify, one core", anchors.opensslVerify, "verify/s")
        out += "\n## Targets (ratios measured in this run)\n\n| target | ours | anchor | ratio | goal |\n|---|---:|---:|---:|---:|\n"
        func ratio(_ name: String, _ ours: Double?, _ anchor: Double?, _ goal: Double) {
            guard let ours, let anchor, anchor > 0 else {
                out += "| \(name) | \(ours.map { String(format: "%.0f", $0) } ?? "-") | - | - | ≥ \(goal) |\n"
                return
            }
            let value = ours / anchor
            out += String(format: "| %@ | %.0f | %.0f | %.2f%@ | ≥ %.1f |\n", name as NSString, ours, anchor, value, value >= goal ? "" : " (missed)", goal)
        }
        ratio("warm exchange @16 / Redis GET @16", figure("warm", 16)?.throughput, anchors.redisGet16, 0.8)
        ratio("cold exchange @16 / openssl rsa2048 verify (1 core)", figure("cold", 16)?.throughput, anchors.opensslVerify, 0.8)
        ratio("durable store @64 / Redis SET always @64", figure("store", 64)?.throughput, anchors.redisSetAlways64, 1.0)
        ratio("durable store @1 / Redis SET always @1", figure("store", 1)?.throughput, anchors.redisSetAlways1, 0.8)
        ratio("warm exchange @1 / echo round trip @1", figure("warm", 1)?.throughput, anchors.echo1?.throughput, 0.5)
        if let large {
            out += String(format: "\n## With %d credentials\n\n| figure | value | goal |\n|---|---:|---:|\n", large.count)
            out += String(format: "| ready after start | %.2f s | ≤ 1 s |\n", large.readySeconds)
            out += String(format: "| RSS after start and %.0f s of stores | %.0f MB | ≤ 150 MB |\n", 3.0, large.rssMegabytes)
            out += String(format: "| store p50, 1 connection, %d vs 1,000 credentials | %.1f µs vs %.1f µs (%.2fx) | ≤ 1.2x |\n",
                          large.count, large.storeP50Large, large.storeP50Small, large.storeP50Large / max(large.storeP50Small, 0.001))
        }
        Swift.print(out)
    }
}
