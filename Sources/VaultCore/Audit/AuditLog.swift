import CVaultSystem
import Foundation
import Logging
import Synchronization
import VaultProtocol

/// One audited event: every exchange (allowed or refused), store, delete and revoke. Never a token.
public struct AuditEntry: Sendable, Equatable {
    public var time: Timestamp
    public var method: String
    public var requestId: String
    public var peer: Peer
    public var outcome: String
    public var code: String?
    public var reason: String?
    public var agent: String?
    public var grantId: String?
    public var jti: String?
    public var principalId: String?
    public var service: String?
    public var credentialId: String?

    public init(
        time: Timestamp, method: String, requestId: String, peer: Peer, outcome: String, code: String? = nil,
        reason: String? = nil, agent: String? = nil, grantId: String? = nil, jti: String? = nil, principalId: String? = nil,
        service: String? = nil, credentialId: String? = nil
    ) {
        self.time = time
        self.method = method
        self.requestId = requestId
        self.peer = peer
        self.outcome = outcome
        self.code = code
        self.reason = reason
        self.agent = agent
        self.grantId = grantId
        self.jti = jti
        self.principalId = principalId
        self.service = service
        self.credentialId = credentialId
    }

    /// The entry as JSON (what `audit show --json` prints), with the chain link when given.
    public func json(previousHash: String? = nil) -> JSONObject {
        var object: JSONObject = [
            "time": .string(time.rfc3339), "method": .string(method), "requestId": .string(requestId),
            "pid": .int(peer.pid), "uid": .int(peer.uid), "gid": .int(peer.gid), "outcome": .string(outcome),
        ]
        let optional: [(String, String?)] = [
            ("code", code), ("reason", reason), ("agt", agent), ("grnt", grantId), ("jti", jti), ("sub", principalId),
            ("service", service), ("credentialId", credentialId),
        ]
        for (key, value) in optional { if let value { object[key] = .string(value) } }
        if let previousHash { object["prev"] = .string(previousHash) }
        return object
    }

    init?(json object: JSONObject) {
        guard let timeText = object["time"]?.stringValue, let time = Timestamp(rfc3339: timeText),
            let method = object["method"]?.stringValue, let requestId = object["requestId"]?.stringValue,
            let pid = object["pid"]?.int64Value, let uid = object["uid"]?.int64Value, let gid = object["gid"]?.int64Value,
            let outcome = object["outcome"]?.stringValue
        else { return nil }
        self.init(
            time: time, method: method, requestId: requestId,
            peer: Peer(pid: Int32(truncatingIfNeeded: pid), uid: UInt32(truncatingIfNeeded: uid), gid: UInt32(truncatingIfNeeded: gid)),
            outcome: outcome, code: object["code"]?.stringValue, reason: object["reason"]?.stringValue,
            agent: object["agt"]?.stringValue, grantId: object["grnt"]?.stringValue, jti: object["jti"]?.stringValue,
            principalId: object["sub"]?.stringValue, service: object["service"]?.stringValue,
            credentialId: object["credentialId"]?.stringValue)
    }
}

/// The audit log: `<state-dir>/audit.log`, sealed records in the store's format (its own subkey and
/// file kind) whose entries are hash-chained.
///
/// Each entry holds `prev`, the keyed BLAKE2b-256 of the previous record's bytes chained onto the
/// hash before it (the chain starts from the hash of the file header). The record MACs and sealed
/// sequence numbers already catch an edited, reordered or removed record; the chain head
/// (`system.status`'s `auditHead`) additionally lets an operator anchor the log outside this
/// machine and detect a truncated tail.
///
/// At start only the last entry is read (the chain head follows from its `prev` and its bytes), so
/// start-up time does not grow with the log; `audit verify` checks every entry.
///
/// Appends are written (`pwrite`) before the request is answered; if that fails the request fails
/// with `UNAVAILABLE`. They are made durable by an fdatasync at most `syncInterval` later and on
/// shutdown, which keeps the exchange path off the fsync path: a power cut can lose up to that
/// interval of audit entries, never a credential write (those are fsynced before their answer).
public final class AuditLog: Sendable {
    public static let fileName = "audit.log"
    public static let syncInterval: TimeInterval = 1

    /// Disk space reserved ahead of the end of the log, so that audit appends (and with them
    /// exchanges) keep working when the disk fills up: 1 MiB holds several thousand entries.
    static let reservation = 1 << 20

    private struct State {
        var descriptor: Int32
        /// End of the space reserved with `vault_reserve_space`.
        var reservedEnd = 0
        var header: SealedLog.Header
        var fileEnd: Int
        var nextSequence: UInt64
        var lastHash: [UInt8]
        var dirty = false
        var failure: String?
    }

    public let path: String
    private let keys: SealedLog.Keys
    private let chainKey: SecureBytes
    private let state: Mutex<State>
    private let logger: Logger
    private let syncQueue = DispatchQueue(label: "grantex-vault.audit.sync")

    /// Opens (or creates) the audit log in `directory`, which `CredentialStore.open` prepared.
    public static func open(directory: String, masterKey: MasterKey, clock: VaultClock = .system, logger: Logger) throws(StoreOpenError) -> AuditLog {
        let path = directory + "/" + fileName
        let keys = SealedLog.Keys(master: masterKey, recordPurpose: .auditRecords)
        let chainKey = masterKey.subkey(.auditChain)
        var descriptor = Foundation.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        var state: State
        if descriptor < 0 {
            guard errno == ENOENT else {
                throw StoreOpenError(kind: .io, message: "cannot open \(path): \(String(cString: strerror(errno)))")
            }
            let header = SealedLog.Header(
                kind: .audit, storeId: Sodium.randomBytes(16), generation: 1, createdAt: clock.now().millisecondsSinceEpoch)
            let headerBytes = SealedLog.encodeHeader(header, keys: keys)
            descriptor = Foundation.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard descriptor >= 0 else {
                throw StoreOpenError(kind: .io, message: "cannot create \(path): \(String(cString: strerror(errno)))")
            }
            do throws(Durable.IOError) {
                try Durable.pwriteAll(descriptor, headerBytes, at: 0, path: path)
                try Durable.fullSync(descriptor, path: path)
            } catch {
                closeDescriptor(descriptor)
                unlink(path)
                throw StoreOpenError(kind: .io, message: "cannot create the audit log: \(error)")
            }
            Durable.syncDirectory(directory)
            state = State(
                descriptor: descriptor, header: header, fileEnd: headerBytes.count, nextSequence: 1,
                lastHash: Sodium.keyedHash(headerBytes, key: chainKey, outputLength: 32))
        } else {
            do throws(StoreOpenError) {
                let bytes: [UInt8]
                do throws(Durable.IOError) {
                    bytes = try Durable.readAll(descriptor, path: path)
                } catch {
                    throw StoreOpenError(kind: .io, message: "cannot read the audit log: \(error)")
                }
                // Only the tail is read at start: the chain head is the keyed hash of the last entry's
                // `prev` and bytes. Start-up does not grow with the log; `audit verify` checks it all.
                let tail = try tailState(bytes, path: path, keys: keys, chainKey: chainKey)
                if let torn = tail.scan.tornTail {
                    logger.warning(
                        "dropped a torn entry at the end of the audit log",
                        metadata: ["path": .string(path), "offset": .stringConvertible(torn.offset), "reason": .string(torn.reason)])
                    guard ftruncate(descriptor, off_t(tail.scan.validLength)) == 0, fsync(descriptor) == 0 else {
                        throw StoreOpenError(kind: .io, message: "cannot cut the torn tail of \(path): \(String(cString: strerror(errno)))")
                    }
                }
                state = State(
                    descriptor: descriptor, header: tail.scan.header, fileEnd: tail.scan.validLength,
                    nextSequence: UInt64(tail.scan.recordCount) + 1, lastHash: tail.headHash)
            } catch {
                closeDescriptor(descriptor)
                throw error
            }
        }
        return AuditLog(path: path, keys: keys, chainKey: chainKey, state: state, logger: logger)
    }

    private init(path: String, keys: SealedLog.Keys, chainKey: SecureBytes, state: State, logger: Logger) {
        self.path = path
        self.keys = keys
        self.chainKey = chainKey
        var state = state
        Self.reserve(&state)
        self.state = Mutex(state)
        self.logger = logger
        scheduleSync()
    }

    private func scheduleSync() {
        syncQueue.asyncAfter(deadline: .now() + Self.syncInterval) { [weak self] in
            guard let self, self.state.withLock({ $0.descriptor >= 0 }) else { return }
            self.sync()
            self.scheduleSync()
        }
    }

    /// Appends `entry`; throws `UNAVAILABLE` when it cannot be written.
    public func append(_ entry: AuditEntry) throws(VaultError) {
        let failure: String? = state.withLock { s in
            if let failure = s.failure { return failure }
            let payload = entry.json(previousHash: Hex.encode(s.lastHash)).jsonBytes
            let record = SealedLog.sealRecord(
                kind: 1, payload: payload, sequence: s.nextSequence, header: s.header, offset: s.fileEnd, keys: keys)
            do throws(Durable.IOError) {
                try Durable.pwriteAll(s.descriptor, record, at: Int64(s.fileEnd), path: path)
            } catch {
                // Cut back a partial write so the log stays well-formed, as the store does.
                if error.bytesWritten > 0, ftruncate(s.descriptor, off_t(s.fileEnd)) != 0 {
                    s.failure = "the audit log could not be restored after a write error"
                }
                logger.error("audit append failed", metadata: ["error": .string(error.description)])
                return error.isNoSpace ? "no space left for the audit log" : "the audit log could not be written"
            }
            s.lastHash = Sodium.keyedHash(s.lastHash + record, key: chainKey, outputLength: 32)
            s.fileEnd += record.count
            s.nextSequence += 1
            s.dirty = true
            if s.reservedEnd - s.fileEnd < Self.reservation / 4 { Self.reserve(&s) }
            return nil
        }
        if let failure { throw .unavailable("The vault cannot answer now: \(failure)") }
    }

    /// Reserves space up to `reservation` beyond the end. Best effort: where the filesystem cannot,
    /// or the disk is already full, appends simply allocate as they go.
    private static func reserve(_ s: inout State) {
        let target = s.fileEnd + reservation
        if vault_reserve_space(s.descriptor, off_t(s.fileEnd), off_t(reservation)) == 0 {
            s.reservedEnd = target
        } else {
            s.reservedEnd = max(s.reservedEnd, s.fileEnd)
        }
    }

    /// The chain head: what an operator records to anchor the log elsewhere.
    public var headHash: String { state.withLock { Hex.encode($0.lastHash) } }

    /// Entries written since the log was created (its next sequence number minus one).
    public var entryCount: Int { state.withLock { Int($0.nextSequence - 1) } }

    private func sync() {
        let descriptor: Int32? = state.withLock { s in
            guard s.dirty else { return nil }
            s.dirty = false
            return s.descriptor
        }
        if let descriptor, fdatasync(descriptor) != 0 {
            logger.error("audit log fdatasync failed", metadata: ["error": .string(String(cString: strerror(errno)))])
        }
    }

    /// Makes every appended entry durable and closes the file.
    public func close() {
        syncQueue.sync {}
        state.withLock { s in
            if s.descriptor >= 0 {
                fdatasync(s.descriptor)
                closeDescriptor(s.descriptor)
                s.descriptor = -1
            }
            s.failure = "the audit log is closed"
        }
    }

    // MARK: - Reading and verifying

    /// The chain head and append position from the last entry alone.
    static func tailState(_ bytes: [UInt8], path: String, keys: SealedLog.Keys, chainKey: SecureBytes) throws(StoreOpenError) -> (scan: SealedLog.Tail, headHash: [UInt8]) {
        let tail: SealedLog.Tail
        do throws(SealedLog.OpenError) {
            tail = try SealedLog.tail(bytes, path: path, expectedKind: .audit, keys: keys)
        } catch {
            throw StoreOpenError(kind: error.kind == .wrongKey ? .wrongKey : .damaged, message: error.message)
        }
        guard let last = tail.last else {
            return (tail, Sodium.keyedHash(Array(bytes[0..<SealedLog.headerSize]), key: chainKey, outputLength: 32))
        }
        guard case .object(let object)? = try? JSONParser.parse(last.record.payload), let prevHex = object["prev"]?.stringValue,
            let prev = Hex.decode(prevHex.utf8), prev.count == 32
        else {
            throw StoreOpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(last.record.offset): undecodable audit entry")
        }
        return (tail, Sodium.keyedHash(prev + Array(last.bytes), key: chainKey, outputLength: 32))
    }

    struct Verified {
        var scan: SealedLog.Scan
        var entries: [AuditEntry]
        var headHash: [UInt8]
    }

    /// Checks every record (MAC, identity, sequence) and the hash chain.
    static func verify(_ bytes: [UInt8], path: String, keys: SealedLog.Keys, chainKey: SecureBytes) throws(StoreOpenError) -> Verified {
        let scan: SealedLog.Scan
        do throws(SealedLog.OpenError) {
            scan = try SealedLog.scan(bytes, path: path, expectedKind: .audit, keys: keys)
        } catch {
            throw StoreOpenError(kind: error.kind == .wrongKey ? .wrongKey : .damaged, message: error.message)
        }
        var hash = Sodium.keyedHash(Array(bytes[0..<SealedLog.headerSize]), key: chainKey, outputLength: 32)
        var entries: [AuditEntry] = []
        for (position, record) in scan.records.enumerated() {
            guard case .object(let object)? = try? JSONParser.parse(record.payload), let entry = AuditEntry(json: object) else {
                throw StoreOpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(record.offset): undecodable audit entry")
            }
            guard object["prev"]?.stringValue == Hex.encode(hash) else {
                throw StoreOpenError(
                    kind: .damaged,
                    message: "\(path) is damaged at byte offset \(record.offset): entry \(position + 1) does not chain to the entry before it")
            }
            let end = position + 1 < scan.records.count ? scan.records[position + 1].offset : scan.validLength
            hash = Sodium.keyedHash(hash + Array(bytes[record.offset..<end]), key: chainKey, outputLength: 32)
            entries.append(entry)
        }
        return Verified(scan: scan, entries: entries, headHash: hash)
    }

    /// What `grantex-vault audit verify/show` reads: every entry, checked, with the chain head.
    public struct Report: Sendable {
        public var entries: [AuditEntry]
        public var headHash: String
        /// Set when the log ends in an entry cut short (a crash, or the daemon writing right now).
        public var tornTail: String?
        /// Set when the last entry is complete but fails authentication: a cut-short write cannot
        /// do that, an edit can (so can a lost disk write), so a verifier must not pass it.
        public var lastEntryFailsAuthentication: String?
    }

    /// Reads and verifies the audit log in `directory` with the master key; throws with the file
    /// and offset of the first problem.
    public static func read(directory: String, masterKey: MasterKey) throws(StoreOpenError) -> Report {
        let path = directory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreOpenError(kind: .io, message: "cannot read \(path)")
        }
        let keys = SealedLog.Keys(master: masterKey, recordPurpose: .auditRecords)
        let verified = try verify(Array(data), path: path, keys: keys, chainKey: masterKey.subkey(.auditChain))
        let torn = verified.scan.tornTail
        let authentication = torn.flatMap { $0.reason == SealedLog.lastRecordFailsAuthentication ? "byte offset \($0.offset)" : nil }
        return Report(
            entries: verified.entries, headHash: Hex.encode(verified.headHash),
            tornTail: authentication == nil ? torn.map { "byte offset \($0.offset): \($0.reason)" } : nil,
            lastEntryFailsAuthentication: authentication)
    }
}
