import CVaultSystem
import Foundation
import Logging
import Synchronization
import VaultProtocol

/// Why the store cannot be opened; `message` names the file (and the byte offset for damage).
public struct StoreOpenError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case wrongKey, damaged, unsupported, io, locked, insecure }
    public var kind: Kind
    public var message: String
    public var description: String { message }
}

/// Tunables of the store. Defaults suit production; tests lower the compaction threshold.
public struct StoreOptions: Sendable {
    /// Compaction runs once the log holds at least this many records and more than twice as many
    /// records as live credentials.
    public var compactionMinimumRecords: Int = 4096
    /// Where write-batch (fsync) latencies are recorded.
    public var metrics: VaultMetrics?

    public init(compactionMinimumRecords: Int = 4096, metrics: VaultMetrics? = nil) {
        self.compactionMinimumRecords = compactionMinimumRecords
        self.metrics = metrics
    }
}

/// The sealed, durable credential store.
///
/// Design (see `docs/store-format.md`):
/// - An append-only log of sealed records (`SealedLog`) in `<state-dir>/vault.log`. A write appends
///   one record, so its cost does not grow with the store.
/// - Reads are served from an in-memory index of *committed* records only; a write becomes visible
///   when it is durable, which is also when it is acknowledged.
/// - Writers queue their mutation under a mutex and are answered from the writer queue after the
///   batch holding it has been written and `fdatasync`ed: concurrent writers share one fsync
///   (group commit). Later writers see earlier pending ones through an overlay, so upserts keep
///   ids and `createdAt` consistent while a batch is in flight.
/// - If a batch cannot be made durable (disk full, I/O error) every pending write fails with
///   `UNAVAILABLE`, the file is cut back to its last durable length and the index is untouched.
///   Reads keep working. If even that cut fails, writes stay refused until restart.
/// - When dead records dominate, a compaction writes a fresh file (next generation) from a
///   snapshot in the background, appends the mutations that happened meanwhile, then renames it into
///   place with fsyncs of the file and the directory.
public final class CredentialStore: Sendable {
    public static let logFileName = "vault.log"
    static let compactFileName = "vault.log.compact"
    static let newFileName = "vault.log.new"
    static let lockFileName = "vault.lock"

    /// The state directory.
    public let directory: String
    /// The credential log.
    public let logPath: String

    private let keys: SealedLog.Keys
    /// Seals tokens held in memory; its key never leaves this process's guarded memory.
    private let memoryBox = SecretBox.ephemeral()
    private let clock: VaultClock
    private let logger: Logger
    private let options: StoreOptions
    private let state: Mutex<State>
    private let writer: LogWriter
    private let writerQueue = DispatchQueue(label: "grantex-vault.store.writer")
    private let compactionQueue = DispatchQueue(label: "grantex-vault.store.compaction")
    private let lockDescriptor: Int32

    private enum Mutation {
        case put(StoredCredential)
        case delete(StoredCredential)
        case revoke(Revocation)
    }

    private struct PendingWrite {
        let ticket: UInt64
        let mutation: Mutation
        let completion: @Sendable (Result<Void, VaultError>) -> Void
    }

    private struct State {
        var index = CredentialIndex()
        var revocations: [Revocation.Key: Revocation] = [:]
        var pending: [PendingWrite] = []
        var overlayById: [String: (ticket: UInt64, credential: StoredCredential?)] = [:]
        var overlayByKey: [CredentialKey: (ticket: UInt64, id: String?)] = [:]
        var nextTicket: UInt64 = 1
        var flushScheduled = false
        var closed = false
        /// Set when the log could not be restored to a known length after a failed write.
        var writeFailure: String?

        func current(id: String) -> StoredCredential? {
            if let entry = overlayById[id] { return entry.credential }
            return index.credential(id: id)
        }

        func current(for key: CredentialKey) -> StoredCredential? {
            if let entry = overlayByKey[key] { return entry.id.flatMap { current(id: $0) } }
            return index.credential(for: key)
        }

        var refusal: VaultError? {
            if closed { return .unavailable("The vault is shutting down") }
            if let writeFailure { return .unavailable(writeFailure) }
            return nil
        }
    }

    /// File state touched only on `writerQueue` (and, for a finished compaction, handed over there).
    ///
    /// `@unchecked Sendable` is safe because every access happens inside a block running on the
    /// serial `writerQueue` (or before the store is shared, in `open`).
    private final class LogWriter: @unchecked Sendable {
        var descriptor: Int32
        var header: SealedLog.Header
        var fileEnd: Int
        var nextSequence: UInt64
        /// Mutations committed since the current compaction's snapshot; nil when none runs.
        var mutationsSinceSnapshot: [Mutation]?
        /// Batches made durable (one fdatasync each) and writes in them, since open.
        var batches = 0
        var batchedWrites = 0

        init(descriptor: Int32, header: SealedLog.Header, fileEnd: Int, nextSequence: UInt64) {
            self.descriptor = descriptor
            self.header = header
            self.fileEnd = fileEnd
            self.nextSequence = nextSequence
        }

        var recordCount: Int { Int(nextSequence - 1) }
    }

    // MARK: - Opening

    /// Opens the store in `directory`, creating the directory (0700) and an empty store if needed.
    ///
    /// Refuses, without changing anything, when the store was sealed with another key, is damaged
    /// anywhere but its tail, is in use by another process, or the directory is writable by others.
    public static func open(
        directory: String, masterKey: MasterKey, clock: VaultClock = .system, logger: Logger,
        options: StoreOptions = StoreOptions()
    ) throws(StoreOpenError) -> CredentialStore {
        try StateDirectory.prepare(directory)
        let keys = SealedLog.Keys(master: masterKey, recordPurpose: .storeRecords)
        // A wrong key is refused before anything in the directory is created or changed.
        try checkKey(logPath: directory + "/" + logFileName, keys: keys)
        let lockPath = directory + "/" + lockFileName
        let lockDescriptor = Foundation.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lockDescriptor >= 0 else {
            throw StoreOpenError(kind: .io, message: "cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(lockDescriptor, LOCK_EX | LOCK_NB) == 0 else {
            closeDescriptor(lockDescriptor)
            throw StoreOpenError(kind: .locked, message: "\(directory) is in use by another grantex-vaultd (lock \(lockPath) is held)")
        }
        do throws(StoreOpenError) {
            return try CredentialStore(
                directory: directory, keys: keys, clock: clock, logger: logger, options: options, lockDescriptor: lockDescriptor)
        } catch {
            closeDescriptor(lockDescriptor)
            throw error
        }
    }

    private static func checkKey(logPath: String, keys: SealedLog.Keys) throws(StoreOpenError) {
        let fd = Foundation.open(logPath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }  // no store yet, or unreadable: the full open reports it
        defer { closeDescriptor(fd) }
        var header = [UInt8](repeating: 0, count: SealedLog.headerSize)
        let count = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, SealedLog.headerSize, 0) }
        guard count == SealedLog.headerSize else { return }
        do throws(SealedLog.OpenError) {
            _ = try SealedLog.readHeader(header, path: logPath, expectedKind: .credentials, keys: keys)
        } catch where error.kind == .wrongKey {
            throw StoreOpenError(kind: .wrongKey, message: error.message)
        } catch {
            return  // other header problems are reported by the full open, with offsets
        }
    }

    private init(
        directory: String, keys: SealedLog.Keys, clock: VaultClock, logger: Logger, options: StoreOptions, lockDescriptor: Int32
    ) throws(StoreOpenError) {
        self.directory = directory
        self.logPath = directory + "/" + Self.logFileName
        self.keys = keys
        self.clock = clock
        self.logger = logger
        self.options = options
        self.lockDescriptor = lockDescriptor

        // Leftovers of a compaction or creation that crashed before its rename: never the live file.
        unlink(directory + "/" + Self.compactFileName)
        unlink(directory + "/" + Self.newFileName)

        var index = CredentialIndex()
        var revocations: [Revocation.Key: Revocation] = [:]
        let writer: LogWriter
        let descriptor = Foundation.open(logPath, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        if descriptor < 0 {
            guard errno == ENOENT else {
                throw StoreOpenError(kind: .io, message: "cannot open \(logPath): \(String(cString: strerror(errno)))")
            }
            writer = try Self.createLog(directory: directory, logPath: logPath, keys: keys, now: clock.now())
            logger.info("created a new sealed store", metadata: ["path": .string(logPath)])
        } else {
            do throws(StoreOpenError) {
                writer = try Self.load(
                    descriptor: descriptor, path: logPath, keys: keys, memoryBox: memoryBox, into: &index,
                    revocations: &revocations, now: clock.now(), logger: logger)
            } catch {
                closeDescriptor(descriptor)
                throw error
            }
        }
        self.writer = writer
        self.state = Mutex(State(index: index, revocations: revocations))
        // Loading held the whole file and every payload at once; give that memory back to the system.
        vault_release_free_memory()
    }

    private static func createLog(directory: String, logPath: String, keys: SealedLog.Keys, now: Timestamp) throws(StoreOpenError) -> LogWriter {
        let header = SealedLog.Header(
            kind: .credentials, storeId: Sodium.randomBytes(16), generation: 1, createdAt: now.millisecondsSinceEpoch)
        let newPath = directory + "/" + newFileName
        do throws(Durable.IOError) {
            let fd = try writeFreshFile(path: newPath, bytes: SealedLog.encodeHeader(header, keys: keys))
            guard rename(newPath, logPath) == 0 else {
                let err = errno
                closeDescriptor(fd)
                throw Durable.IOError(operation: "rename", path: newPath, code: err)
            }
            Durable.syncDirectory(directory)
            return LogWriter(descriptor: fd, header: header, fileEnd: SealedLog.headerSize, nextSequence: 1)
        } catch {
            unlink(newPath)
            throw StoreOpenError(kind: .io, message: "cannot create the store: \(error)")
        }
    }

    /// Creates `path` (0600, must not exist), writes `bytes`, fsyncs; returns the open descriptor.
    private static func writeFreshFile(path: String, bytes: [UInt8]) throws(Durable.IOError) -> Int32 {
        let fd = Foundation.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Durable.IOError(operation: "create", path: path, code: errno) }
        do throws(Durable.IOError) {
            try Durable.pwriteAll(fd, bytes, at: 0, path: path)
            try Durable.fullSync(fd, path: path)
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return fd
    }

    private static func load(
        descriptor: Int32, path: String, keys: SealedLog.Keys, memoryBox: SecretBox, into index: inout CredentialIndex,
        revocations: inout [Revocation.Key: Revocation], now: Timestamp, logger: Logger
    ) throws(StoreOpenError) -> LogWriter {
        let bytes: [UInt8]
        do throws(Durable.IOError) {
            bytes = try Durable.readAll(descriptor, path: path)
        } catch {
            throw StoreOpenError(kind: .io, message: "cannot read the store: \(error)")
        }
        let scan: SealedLog.Scan
        do throws(SealedLog.OpenError) {
            scan = try SealedLog.scan(bytes, path: path, expectedKind: .credentials, keys: keys)
        } catch {
            let kind: StoreOpenError.Kind
            switch error.kind {
            case .wrongKey: kind = .wrongKey
            case .damaged: kind = .damaged
            case .unsupported: kind = .unsupported
            case .io: kind = .io
            }
            throw StoreOpenError(kind: kind, message: error.message)
        }
        // Decode on all cores (JSON, re-sealing tokens for memory); apply in file order.
        enum Decoded {
            case put(StoredCredential)
            case delete(String)
            case revoke(Revocation)
            case unknownKind
            case undecodable
        }
        let decoded: [Decoded] = parallelMap(scan.records.count) { index in
            let record = scan.records[index]
            switch record.kind {
            case CredentialRecordCodec.putKind:
                guard let (decodedCredential, secrets) = try? CredentialRecordCodec.decodePut(record.payload) else { return .undecodable }
                var credential = decodedCredential
                credential.sealedSecrets = CredentialRecordCodec.sealSecrets(secrets, box: memoryBox)
                return .put(credential)
            case CredentialRecordCodec.deleteKind:
                return (try? CredentialRecordCodec.decodeDelete(record.payload)).map(Decoded.delete) ?? .undecodable
            case Revocation.recordKind:
                return (try? Revocation(payload: record.payload)).map(Decoded.revoke) ?? .undecodable
            default:
                return .unknownKind
            }
        }
        for (record, item) in zip(scan.records, decoded) {
            switch item {
            case .put(let credential): index.upsert(credential)
            case .delete(let id): index.remove(id: id)
            case .revoke(let revocation): if !revocation.isForgotten(at: now) { revocations[revocation.key] = revocation }
            case .unknownKind:
                throw StoreOpenError(
                    kind: .unsupported,
                    message: "\(path): record at byte offset \(record.offset) has unknown kind \(record.kind) (written by a newer grantex-vaultd?)")
            case .undecodable:
                throw StoreOpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(record.offset): undecodable record payload")
            }
        }
        if let torn = scan.tornTail {
            logger.warning(
                "dropped a torn record at the end of the store (a write interrupted by a crash was never acknowledged)",
                metadata: ["path": .string(path), "offset": .stringConvertible(torn.offset), "reason": .string(torn.reason)])
            guard ftruncate(descriptor, off_t(scan.validLength)) == 0, fsync(descriptor) == 0 else {
                throw StoreOpenError(kind: .io, message: "cannot cut the torn tail of \(path) at byte offset \(torn.offset): \(String(cString: strerror(errno)))")
            }
        }
        return LogWriter(
            descriptor: descriptor, header: scan.header, fileEnd: scan.validLength,
            nextSequence: UInt64(scan.records.count) + 1)
    }

    // MARK: - Reads

    /// Number of committed credentials.
    public var count: Int { state.withLock { $0.index.count } }

    /// The committed credential with this id.
    public func credential(id: String) -> StoredCredential? {
        state.withLock { $0.index.credential(id: id) }
    }

    /// The committed credential of this principal and service.
    public func credential(for key: CredentialKey) -> StoredCredential? {
        state.withLock { $0.index.credential(for: key) }
    }

    /// The tokens of a credential, opened from their in-memory seal. Callers drop them as soon as
    /// the answer is sent.
    public func secrets(of credential: StoredCredential) -> CredentialSecrets? {
        CredentialRecordCodec.openSecrets(credential.sealedSecrets, box: memoryBox)
    }

    /// One page of `vault.list`.
    public func list(_ params: ListVaultCredentialsParams) throws(VaultError) -> ListVaultCredentialsResponse {
        let cursor = try params.cursor.map { (raw) throws(VaultError) in try ListPosition(cursor: raw) }
        let limit = params.limit ?? Limits.defaultListLimit
        let (page, next) = state.withLock {
            $0.index.page(principalId: params.principalId, service: params.service, limit: limit, after: cursor)
        }
        return ListVaultCredentialsResponse(credentials: page.map(\.view), nextCursor: next?.cursor)
    }

    // MARK: - Writes

    /// Stores (upserts) a credential; `completion` runs once it is durable, or with the error.
    /// `params` must have passed `StoreCredentialParams(validating:)`.
    public func store(_ params: StoreCredentialParams, completion: @escaping @Sendable (Result<StoreCredentialResponse, VaultError>) -> Void) {
        let now = clock.now()
        let secrets = CredentialSecrets(accessToken: params.accessToken, refreshToken: params.refreshToken)
        let sealed = CredentialRecordCodec.sealSecrets(secrets, box: memoryBox)
        let key = CredentialKey(principalId: params.principalId, service: params.service)
        let outcome: Result<(StoredCredential, Bool, Bool), VaultError> = state.withLock { s in
            if let refusal = s.refusal { return .failure(refusal) }
            let existing = s.current(for: key)
            let credential = StoredCredential(
                id: existing?.id ?? VaultIdentifier.credential(at: now), principalId: params.principalId,
                service: params.service, credentialType: params.credentialType ?? Limits.defaultCredentialType,
                tokenExpiresAt: params.tokenExpiresAt.flatMap { Timestamp(rfc3339: $0) },
                metadata: params.metadata ?? JSONObject(), createdAt: existing?.createdAt ?? now,
                updatedAt: max(now, existing?.updatedAt ?? now), hasRefreshToken: params.refreshToken != nil,
                sealedSecrets: sealed)
            let schedule = Self.enqueue(.put(credential), in: &s) { result in
                completion(result.map {
                    StoreCredentialResponse(
                        id: credential.id, principalId: credential.principalId, service: credential.service,
                        credentialType: credential.credentialType, createdAt: credential.createdAt.rfc3339,
                        updatedAt: credential.updatedAt.rfc3339, created: existing == nil)
                })
            }
            return .success((credential, existing == nil, schedule))
        }
        switch outcome {
        case .failure(let error): completion(.failure(error))
        case .success(let (_, _, schedule)): if schedule { scheduleFlush() }
        }
    }

    /// `revoke(_:_:expiresAt:completion:)` as an async call.
    public func revoke(_ kind: Revocation.Kind, _ value: String, expiresAt: Timestamp?) async throws(VaultError) -> Revocation {
        let result = await withCheckedContinuation { continuation in
            revoke(kind, value, expiresAt: expiresAt) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Revokes a token id or grant id; `completion` runs once the revocation is durable. Revoking
    /// again is allowed and updates `expiresAt`.
    public func revoke(_ kind: Revocation.Kind, _ value: String, expiresAt: Timestamp?, completion: @escaping @Sendable (Result<Revocation, VaultError>) -> Void) {
        let revocation = Revocation(kind: kind, value: value, revokedAt: clock.now(), expiresAt: expiresAt)
        let outcome: Result<Bool, VaultError> = state.withLock { s in
            if let refusal = s.refusal { return .failure(refusal) }
            return .success(Self.enqueue(.revoke(revocation), in: &s) { result in completion(result.map { revocation }) })
        }
        switch outcome {
        case .failure(let error): completion(.failure(error))
        case .success(let schedule): if schedule { scheduleFlush() }
        }
    }

    /// True when the token id or the grant id is revoked (and not yet forgotten).
    public func isRevoked(jti: String, grantId: String) -> Bool {
        let now = clock.now()
        return state.withLock { s in
            for key in [Revocation.Key(kind: .jti, value: jti), Revocation.Key(kind: .grant, value: grantId)] {
                if let entry = s.revocations[key], !entry.isForgotten(at: now) { return true }
            }
            return false
        }
    }

    /// Every revocation still in force, oldest first.
    public var revocations: [Revocation] {
        let now = clock.now()
        return state.withLock { s in
            s.revocations.values.filter { !$0.isForgotten(at: now) }.sorted { ($0.revokedAt, $0.value) < ($1.revokedAt, $1.value) }
        }
    }

    /// Deletes a credential; `completion` runs once the delete is durable, or with `NOT_FOUND`.
    public func delete(id: String, completion: @escaping @Sendable (Result<DeleteCredentialResponse, VaultError>) -> Void) {
        let outcome: Result<Bool, VaultError> = state.withLock { s in
            if let refusal = s.refusal { return .failure(refusal) }
            guard let existing = s.current(id: id) else { return .failure(.notFound()) }
            return .success(Self.enqueue(.delete(existing), in: &s) { result in
                completion(result.map { DeleteCredentialResponse(id: id, deleted: true) })
            })
        }
        switch outcome {
        case .failure(let error): completion(.failure(error))
        case .success(let schedule): if schedule { scheduleFlush() }
        }
    }

    /// Adds a mutation to the pending batch and the overlay; true when a flush must be scheduled.
    private static func enqueue(
        _ mutation: Mutation, in s: inout State, completion: @escaping @Sendable (Result<Void, VaultError>) -> Void
    ) -> Bool {
        let ticket = s.nextTicket
        s.nextTicket += 1
        s.pending.append(PendingWrite(ticket: ticket, mutation: mutation, completion: completion))
        switch mutation {
        case .put(let credential):
            s.overlayById[credential.id] = (ticket, credential)
            s.overlayByKey[credential.key] = (ticket, credential.id)
        case .delete(let credential):
            s.overlayById[credential.id] = (ticket, nil)
            s.overlayByKey[credential.key] = (ticket, nil)
        case .revoke:
            break  // read from committed state only: a revocation counts once it is durable
        }
        if s.flushScheduled { return false }
        s.flushScheduled = true
        return true
    }

    private func scheduleFlush() {
        writerQueue.async { self.flush() }
    }

    /// Writes every pending mutation as one batch with one fdatasync (writer queue only).
    private func flush() {
        let batch: [PendingWrite] = state.withLock { s in
            let batch = s.pending
            s.pending = []
            s.flushScheduled = false
            return batch
        }
        guard !batch.isEmpty else { return }
        let startSequence = writer.nextSequence
        var bytes: [UInt8] = []
        for write in batch {
            bytes += sealRecord(write.mutation, sequence: writer.nextSequence, header: writer.header, offset: writer.fileEnd + bytes.count)
            writer.nextSequence += 1
        }
        let started = ContinuousClock.now
        do throws(Durable.IOError) {
            try Durable.pwriteAll(writer.descriptor, bytes, at: Int64(writer.fileEnd), path: logPath)
            try Durable.dataSync(writer.descriptor, path: logPath)
            options.metrics?.recordFsync(ContinuousClock.now - started)
        } catch {
            writer.nextSequence = startSequence
            recoverFromFailedWrite(batch, error: error)
            return
        }
        writer.fileEnd += bytes.count
        writer.batches += 1
        writer.batchedWrites += batch.count
        let liveCount: Int = state.withLock { s in
            for write in batch {
                switch write.mutation {
                case .put(let credential):
                    s.index.upsert(credential)
                    if s.overlayByKey[credential.key]?.ticket == write.ticket { s.overlayByKey[credential.key] = nil }
                    if s.overlayById[credential.id]?.ticket == write.ticket { s.overlayById[credential.id] = nil }
                case .delete(let credential):
                    s.index.remove(id: credential.id)
                    if s.overlayByKey[credential.key]?.ticket == write.ticket { s.overlayByKey[credential.key] = nil }
                    if s.overlayById[credential.id]?.ticket == write.ticket { s.overlayById[credential.id] = nil }
                case .revoke(let revocation):
                    s.revocations[revocation.key] = revocation
                }
            }
            return s.index.count + s.revocations.count
        }
        writer.mutationsSinceSnapshot?.append(contentsOf: batch.map(\.mutation))
        for write in batch { write.completion(.success(())) }
        if writer.mutationsSinceSnapshot == nil, writer.recordCount >= options.compactionMinimumRecords,
            writer.recordCount > 2 * liveCount
        {
            startCompaction()
        }
    }

    private func recoverFromFailedWrite(_ batch: [PendingWrite], error: Durable.IOError) {
        // Cut the file back to its last durable length so that a partly written batch can never be
        // mistaken for data; if that fails too, the file's end is unknown and writes must stop.
        // A write that failed before its first byte (EROFS, ENOSPC at once) left nothing to undo.
        let nothingWritten = error.operation == "write" && error.bytesWritten == 0
        let restored = nothingWritten || (ftruncate(writer.descriptor, off_t(writer.fileEnd)) == 0 && fdatasync(writer.descriptor) == 0)
        let failure: VaultError =
            error.isNoSpace
            ? .unavailable("The vault cannot accept writes now: no space left on the state directory's disk")
            : error.code == EROFS
                ? .unavailable("The vault cannot accept writes now: the state directory is read-only")
                : .unavailable("The vault cannot accept writes now: the store could not be written")
        logger.error(
            "store write failed; the batch was not acknowledged",
            metadata: ["error": .string(error.description), "writes": .stringConvertible(batch.count), "restored": .stringConvertible(restored)])
        // Writes queued behind the failed batch were decided against it (the overlay): fail them too.
        let queued: [PendingWrite] = state.withLock { s in
            let queued = s.pending
            s.pending = []
            s.overlayById = [:]
            s.overlayByKey = [:]
            if !restored {
                s.writeFailure = "The vault cannot accept writes until it is restarted: the store file could not be restored after a write error"
            }
            return queued
        }
        for write in batch + queued { write.completion(.failure(failure)) }
    }

    // MARK: - Compaction

    private func startCompaction() {
        let now = clock.now()
        let snapshot: [Mutation] = state.withLock { s in
            let credentials = Array(s.index.byId.values).sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            let revocations = s.revocations.values.filter { !$0.isForgotten(at: now) }.sorted { $0.revokedAt < $1.revokedAt }
            return credentials.map(Mutation.put) + revocations.map(Mutation.revoke)
        }
        writer.mutationsSinceSnapshot = []
        let header = SealedLog.Header(
            kind: .credentials, storeId: writer.header.storeId, generation: writer.header.generation + 1,
            createdAt: clock.now().millisecondsSinceEpoch)
        let oldRecords = writer.recordCount
        compactionQueue.async {
            let path = self.directory + "/" + Self.compactFileName
            var bytes = SealedLog.encodeHeader(header, keys: self.keys)
            var sequence: UInt64 = 1
            for mutation in snapshot {
                bytes += self.sealRecord(mutation, sequence: sequence, header: header, offset: bytes.count)
                sequence += 1
            }
            let result: Result<Int32, Durable.IOError>
            do throws(Durable.IOError) {
                result = .success(try Self.writeFreshFile(path: path, bytes: bytes))
            } catch {
                unlink(path)
                result = .failure(error)
            }
            let fileEnd = bytes.count
            let nextSequence = sequence
            self.writerQueue.async {
                self.finishCompaction(result, header: header, fileEnd: fileEnd, nextSequence: nextSequence, oldRecords: oldRecords)
            }
        }
    }

    private func sealRecord(_ mutation: Mutation, sequence: UInt64, header: SealedLog.Header, offset: Int) -> [UInt8] {
        switch mutation {
        case .put(let credential):
            let secrets = CredentialRecordCodec.openSecrets(credential.sealedSecrets, box: memoryBox)!
            var payload = CredentialRecordCodec.putPayload(credential, secrets: secrets)
            defer { Sodium.wipe(&payload) }
            return SealedLog.sealRecord(
                kind: CredentialRecordCodec.putKind, payload: payload, sequence: sequence, header: header, offset: offset, keys: keys)
        case .delete(let credential):
            return SealedLog.sealRecord(
                kind: CredentialRecordCodec.deleteKind, payload: CredentialRecordCodec.deletePayload(id: credential.id),
                sequence: sequence, header: header, offset: offset, keys: keys)
        case .revoke(let revocation):
            return SealedLog.sealRecord(
                kind: Revocation.recordKind, payload: revocation.payload, sequence: sequence, header: header, offset: offset, keys: keys)
        }
    }

    private func finishCompaction(
        _ built: Result<Int32, Durable.IOError>, header: SealedLog.Header, fileEnd: Int, nextSequence: UInt64, oldRecords: Int
    ) {
        let path = directory + "/" + Self.compactFileName
        let mutations = writer.mutationsSinceSnapshot ?? []
        writer.mutationsSinceSnapshot = nil
        guard case .success(let descriptor) = built else {
            if case .failure(let error) = built {
                logger.warning("compaction failed; the store keeps its current file", metadata: ["error": .string(error.description)])
            }
            return
        }
        var sequence = nextSequence
        var tail: [UInt8] = []
        for mutation in mutations {
            tail += sealRecord(mutation, sequence: sequence, header: header, offset: fileEnd + tail.count)
            sequence += 1
        }
        do throws(Durable.IOError) {
            try Durable.pwriteAll(descriptor, tail, at: Int64(fileEnd), path: path)
            try Durable.dataSync(descriptor, path: path)
            guard rename(path, logPath) == 0 else { throw Durable.IOError(operation: "rename", path: path, code: errno) }
        } catch {
            closeDescriptor(descriptor)
            unlink(path)
            logger.warning("compaction failed; the store keeps its current file", metadata: ["error": .string(error.description)])
            return
        }
        if !Durable.syncDirectory(directory) {
            logger.warning("could not fsync the state directory after compaction", metadata: ["directory": .string(directory)])
        }
        closeDescriptor(writer.descriptor)
        writer.descriptor = descriptor
        writer.header = header
        writer.fileEnd = fileEnd + tail.count
        writer.nextSequence = sequence
        logger.info(
            "compacted the store", metadata: ["recordsBefore": .stringConvertible(oldRecords), "recordsAfter": .stringConvertible(writer.recordCount)])
    }

    // MARK: - Lifecycle

    /// Refuses new writes, waits for in-flight writes and any compaction, and closes the files.
    public func close() {
        state.withLock { $0.closed = true }
        writerQueue.sync {}
        compactionQueue.sync {}
        writerQueue.sync {
            closeDescriptor(writer.descriptor)
            writer.descriptor = -1
        }
        // Unlock explicitly: a process forked by another thread holds a copy of the descriptor until
        // it execs, and closing ours alone would leave the lock held through that copy.
        flock(lockDescriptor, LOCK_UN)
        closeDescriptor(lockDescriptor)
    }

    /// Figures about the log file: its generation (bumped by each compaction), records and bytes,
    /// and how many durable batches (fsyncs) carried how many writes since open.
    public struct FileStatistics: Sendable {
        public var generation: UInt64
        public var records: Int
        public var bytes: Int
        public var batches: Int
        public var batchedWrites: Int
    }

    public var fileStatistics: FileStatistics {
        writerQueue.sync {
            FileStatistics(
                generation: writer.header.generation, records: writer.recordCount, bytes: writer.fileEnd,
                batches: writer.batches, batchedWrites: writer.batchedWrites)
        }
    }
}

// MARK: - async conveniences

extension CredentialStore {
    /// `store(_:completion:)` as an async call.
    public func store(_ params: StoreCredentialParams) async throws(VaultError) -> StoreCredentialResponse {
        let result = await withCheckedContinuation { continuation in
            store(params) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// `delete(id:completion:)` as an async call.
    public func delete(id: String) async throws(VaultError) -> DeleteCredentialResponse {
        let result = await withCheckedContinuation { continuation in
            delete(id: id) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }
}
