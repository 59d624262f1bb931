import Foundation
import Testing
import VaultProtocol
@testable import VaultCore

@Suite("Audit log")
struct AuditLogTests {
    private func entry(_ index: Int) -> AuditEntry {
        AuditEntry(
            time: Timestamp(millisecondsSinceEpoch: 1_795_954_603_000 + Int64(index)), method: "vault.exchange", requestId: "req_\(index)",
            peer: Peer(pid: 10, uid: 1000, gid: 1000), outcome: index % 2 == 0 ? "allowed" : "refused", reason: index % 2 == 0 ? nil : "scope",
            agent: "agent_\(index)", grantId: "grnt_\(index)", jti: "jti_\(index)", principalId: "user-SENSITIVE-\(index)", service: "github")
    }

    /// A log of five entries; returns its bytes and the offset of each entry.
    private func makeLog(in dir: TemporaryDirectory) throws -> (bytes: [UInt8], offsets: [Int]) {
        let log = try AuditLog.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        var offsets: [Int] = []
        for index in 0..<5 {
            offsets.append(readFile(dir.file(AuditLog.fileName)).count)
            try log.append(entry(index))
        }
        log.close()
        return (readFile(dir.file(AuditLog.fileName)), offsets)
    }

    private func verify(_ bytes: [UInt8]) -> Result<AuditLog.Report, StoreOpenError> {
        let dir = TemporaryDirectory()
        writeFile(dir.file(AuditLog.fileName), bytes)
        do {
            return .success(try AuditLog.read(directory: dir.path, masterKey: key(1)))
        } catch {
            return .failure(error)
        }
    }

    @Test("entries round trip, chained, sealed, and reopening continues the chain")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        let (bytes, _) = try makeLog(in: dir)
        #expect(!bytes.contains(subsequence: Array("SENSITIVE".utf8)))
        #expect(!bytes.contains(subsequence: Array("agent_".utf8)))
        let report = try AuditLog.read(directory: dir.path, masterKey: key(1))
        #expect(report.entries == (0..<5).map(entry))
        #expect(report.tornTail == nil)

        let reopened = try AuditLog.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        #expect(reopened.headHash == report.headHash)
        try reopened.append(entry(5))
        reopened.close()
        let longer = try AuditLog.read(directory: dir.path, masterKey: key(1))
        #expect(longer.entries.count == 6)
        #expect(longer.headHash != report.headHash)
    }

    @Test("an edited entry is detected")
    func edited() throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try makeLog(in: dir)
        var damaged = bytes
        damaged[offsets[2] + 40] ^= 0x01
        guard case .failure(let error) = verify(damaged) else {
            Issue.record("an edited log verified")
            return
        }
        #expect(error.message.contains("offset \(offsets[2])"))
    }

    @Test("a removed entry is detected")
    func removed() throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try makeLog(in: dir)
        let removed = Array(bytes[..<offsets[1]]) + Array(bytes[offsets[2]...])
        #expect(throws: StoreOpenError.self) { try verify(removed).get() }
    }

    @Test("reordered entries are detected")
    func reordered() throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try makeLog(in: dir)
        let first = Array(bytes[offsets[1]..<offsets[2]])
        let second = Array(bytes[offsets[2]..<offsets[3]])
        let reordered = Array(bytes[..<offsets[1]]) + second + first + Array(bytes[offsets[3]...])
        #expect(throws: StoreOpenError.self) { try verify(reordered).get() }
    }

    @Test("a truncated tail verifies but changes the chain head, which is what an external anchor catches")
    func truncated() throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try makeLog(in: dir)
        let full = try verify(bytes).get()
        let cut = try verify(Array(bytes[..<offsets[4]])).get()
        #expect(cut.entries.count == 4)
        #expect(cut.headHash != full.headHash)
        let torn = try verify(Array(bytes[..<(offsets[4] + 10)])).get()
        #expect(torn.tornTail != nil)
    }

    @Test("opening reads only the tail: a torn last entry is dropped and appending continues a valid chain")
    func tornTailOnOpen() throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try makeLog(in: dir)
        writeFile(dir.file(AuditLog.fileName), Array(bytes[..<(offsets[4] + 30)]))
        let logs = CapturingLogHandler()
        let reopened = try AuditLog.open(directory: dir.path, masterKey: key(1), logger: makeLogger(logs))
        #expect(logs.all.contains { $0.hasPrefix("warning") && $0.contains("torn") })
        #expect(reopened.entryCount == 4)
        try reopened.append(entry(9))
        let head = reopened.headHash
        reopened.close()
        let report = try AuditLog.read(directory: dir.path, masterKey: key(1))
        #expect(report.entries.map(\.requestId) == ["req_0", "req_1", "req_2", "req_3", "req_9"])
        #expect(report.headHash == head)
    }

    @Test("the audit log does not open with another key")
    func wrongKey() throws {
        let dir = TemporaryDirectory()
        _ = try makeLog(in: dir)
        #expect(throws: StoreOpenError.self) { try AuditLog.read(directory: dir.path, masterKey: key(2)) }
    }
}

@Suite("Revocations in the store")
struct RevocationStoreTests {
    @Test("revocations survive reopen and compaction; expired ones are forgotten")
    func persistence() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        let store = try CredentialStore.open(
            directory: dir.path, masterKey: key(1), clock: clock.clock, logger: makeLogger(), options: StoreOptions(compactionMinimumRecords: 32))
        _ = try await store.revoke(.jti, "jti-1", expiresAt: nil)
        _ = try await store.revoke(.grant, "grant-1", expiresAt: Timestamp(millisecondsSinceEpoch: clock.clock.now().millisecondsSinceEpoch + 60_000))
        #expect(store.isRevoked(jti: "jti-1", grantId: "other"))
        #expect(store.isRevoked(jti: "other", grantId: "grant-1"))
        #expect(!store.isRevoked(jti: "grant-1", grantId: "jti-1"))  // kinds do not mix
        for round in 0..<100 { _ = try await store.store(try storeParams("p", "s", token: "t\(round)")) }
        #expect(store.fileStatistics.generation > 1)
        store.close()

        let reopened = try CredentialStore.open(directory: dir.path, masterKey: key(1), clock: clock.clock, logger: makeLogger())
        #expect(reopened.isRevoked(jti: "jti-1", grantId: "x"))
        #expect(reopened.isRevoked(jti: "x", grantId: "grant-1"))
        clock.advance(ms: 61_000)
        #expect(!reopened.isRevoked(jti: "x", grantId: "grant-1"))
        #expect(reopened.revocations.map(\.value) == ["jti-1"])
        reopened.close()
    }
}

@Suite("Failure rate limiter")
struct FailureRateLimiterTests {
    @Test("a burst, then the refill rate, per uid")
    func bucket() {
        let limiter = FailureRateLimiter(burst: 3, perSecond: 2)
        let t0 = Timestamp(millisecondsSinceEpoch: 1_000_000)
        for _ in 0..<3 { #expect(limiter.recordFailure(uid: 7, now: t0) == nil) }
        #expect(limiter.recordFailure(uid: 7, now: t0) == 500)
        #expect(limiter.recordFailure(uid: 8, now: t0) == nil)  // another uid has its own bucket
        #expect(limiter.recordFailure(uid: 7, now: Timestamp(millisecondsSinceEpoch: 1_000_500)) == nil)
        #expect(limiter.recordFailure(uid: 7, now: Timestamp(millisecondsSinceEpoch: 1_000_500)) != nil)
    }
}
