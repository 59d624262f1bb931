import Foundation

/// The on-disk format shared by the credential store and the audit log: a fixed header followed by
/// sealed records. `docs/store-format.md` is the prose version of this file.
///
/// ```
/// header (80 bytes)
///   0  8  magic "GXVAULT1"
///   8  2  format version (1), little endian
///  10  2  file kind (1 credentials, 2 audit)
///  12  4  reserved, zero
///  16 16  store id (random, fixed for the life of the store)
///  32  8  generation (incremented by every compaction)
///  40  8  creation time of this file, ms since the epoch
///  48 16  key check: BLAKE2b-128 keyed with the key-check subkey over a fixed string
///  64 16  header MAC: BLAKE2b-128 keyed with the header subkey over bytes 0..<64
/// record
///   0  4  box length L, little endian
///   4  4  framing check: low 32 bits of SipHash-2-4(framing subkey, file offset || L)
///   8  L  secretbox: nonce (24) || tag (16) || ciphertext
/// record plaintext
///   0 16  store id          } the record's identity: a record moved to another position,
///  16  8  generation        } another file generation or another store fails these checks
///  24  8  sequence number   } even though its MAC is valid
///  32  1  record kind
///  33  4  payload length P
///  37  P  payload (compact JSON)
///     ..  zero padding to a multiple of 64 bytes, so sizes leak only coarsely
/// ```
enum SealedLog {
    static let magic: [UInt8] = Array("GXVAULT1".utf8)
    static let formatVersion: UInt16 = 1
    static let headerSize = 80
    static let framingSize = 8
    static let identitySize = 37
    static let paddingQuantum = 64
    /// Largest sealed record accepted on load: far above the largest legal credential (two 16 KiB
    /// tokens, 16 KiB metadata, identifiers), small enough that a damaged length cannot make the
    /// loader allocate gigabytes.
    static let maxBoxBytes = 1 << 20
    static let keyCheckLabel: [UInt8] = Array("grantex-vault key check v1".utf8)
    /// The torn-tail reason for a complete last record whose MAC fails (as opposed to one cut short).
    static let lastRecordFailsAuthentication = "the last record fails authentication"

    enum FileKind: UInt16 {
        case credentials = 1
        case audit = 2
    }

    struct Header: Equatable {
        var kind: FileKind
        var storeId: [UInt8]
        var generation: UInt64
        var createdAt: Int64
    }

    struct Record {
        /// Byte offset of the record in its file, for error messages.
        var offset: Int
        var sequence: UInt64
        var kind: UInt8
        var payload: [UInt8]
    }

    /// The keys of one log file kind, derived from the master key.
    struct Keys: Sendable {
        let box: SecretBox
        let framing: SecureBytes
        let headerAuthentication: SecureBytes
        let keyCheck: [UInt8]

        init(master: MasterKey, recordPurpose: MasterKey.Purpose) {
            box = SecretBox(key: master.subkey(recordPurpose))
            framing = master.subkey(.recordFraming, length: 16)
            headerAuthentication = master.subkey(.headerAuthentication)
            keyCheck = Sodium.keyedHash(SealedLog.keyCheckLabel, key: master.subkey(.keyCheck))
        }
    }

    /// Why a log file cannot be opened. `message` names the file and, for damage, the byte offset.
    struct OpenError: Error, CustomStringConvertible {
        enum Kind { case wrongKey, damaged, unsupported, io }
        var kind: Kind
        var message: String
        var description: String { message }
    }

    /// What a scan of a whole file found.
    struct Scan {
        var header: Header
        var records: [Record]
        /// Length of the valid prefix: header plus every good record.
        var validLength: Int
        /// Set when the file ends in a torn record that was dropped.
        var tornTail: (offset: Int, reason: String)?
    }

    // MARK: - Writing

    static func encodeHeader(_ header: Header, keys: Keys) -> [UInt8] {
        var out = magic
        out.appendLittleEndian(formatVersion)
        out.appendLittleEndian(header.kind.rawValue)
        out.appendLittleEndian(UInt32(0))
        out += header.storeId
        out.appendLittleEndian(header.generation)
        out.appendLittleEndian(header.createdAt)
        out += keys.keyCheck
        out += Sodium.keyedHash(out, key: keys.headerAuthentication)
        assert(out.count == headerSize)
        return out
    }

    static func framingCheck(offset: Int, length: UInt32, keys: Keys) -> UInt32 {
        var message = [UInt8]()
        message.appendLittleEndian(UInt64(offset))
        message.appendLittleEndian(length)
        return UInt32(truncatingIfNeeded: Sodium.shortHash(message, key: keys.framing))
    }

    /// The bytes of one record to be written at `offset`. The plaintext is wiped after sealing.
    static func sealRecord(
        kind: UInt8, payload: [UInt8], sequence: UInt64, header: Header, offset: Int, keys: Keys
    ) -> [UInt8] {
        var plaintext = [UInt8]()
        let unpadded = identitySize + payload.count
        let padded = (unpadded + paddingQuantum - 1) / paddingQuantum * paddingQuantum
        plaintext.reserveCapacity(padded)
        plaintext += header.storeId
        plaintext.appendLittleEndian(header.generation)
        plaintext.appendLittleEndian(sequence)
        plaintext.append(kind)
        plaintext.appendLittleEndian(UInt32(payload.count))
        plaintext += payload
        plaintext += [UInt8](repeating: 0, count: padded - unpadded)
        let box = keys.box.seal(plaintext)
        Sodium.wipe(&plaintext)
        var out = [UInt8]()
        out.reserveCapacity(framingSize + box.count)
        out.appendLittleEndian(UInt32(box.count))
        out.appendLittleEndian(framingCheck(offset: offset, length: UInt32(box.count), keys: keys))
        out += box
        return out
    }

    // MARK: - Reading

    /// Checks the header and every record of `bytes` (the whole file at `path`).
    ///
    /// The rule for damage: a record that is cut short, or whose MAC fails while it is the last thing
    /// in the file, is a torn write (the crash happened while it was being appended): it is dropped
    /// and reported in `tornTail`. Anything else that fails a check is damage and throws with the
    /// offset, so no acknowledged record is ever dropped silently.
    static func scan(_ bytes: [UInt8], path: String, expectedKind: FileKind, keys: Keys) throws(OpenError) -> Scan {
        let header = try readHeader(bytes, path: path, expectedKind: expectedKind, keys: keys)

        // 1. Walk the framing (cheap) to find every record; note where and why the walk stopped.
        let (spans, stop) = walkFraming(bytes, keys: keys)

        // 2. Open every box, on all cores: decryption is most of the cost of opening a large store.
        // 2. Open every box, on all cores: decryption is most of the cost of opening a large store.
        let opened: [[UInt8]?] = parallelMap(spans.count) { index in
            let span = spans[index]
            return bytes.withUnsafeBytes { keys.box.open(UnsafeRawBufferPointer(rebasing: $0[(span.lowerBound + framingSize)..<span.upperBound])) }
        }

        // 3. In file order, check each record's identity; the first problem decides, as in a sequential read.
        var records: [Record] = []
        records.reserveCapacity(spans.count)
        var tornTail: (Int, String)? = nil
        var expectedSequence: UInt64 = 1
        var validLength = headerSize
        for (index, span) in spans.enumerated() {
            let offset = span.lowerBound
            guard var plaintext = opened[index] else {
                if index == spans.count - 1, case .end = stop {
                    tornTail = (offset, SealedLog.lastRecordFailsAuthentication)
                    break
                }
                throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(offset): record fails authentication")
            }
            defer { Sodium.wipe(&plaintext) }
            let storeId = Array(plaintext[0..<16])
            let generation = plaintext.readLittleEndian(UInt64.self, at: 16)
            let sequence = plaintext.readLittleEndian(UInt64.self, at: 24)
            let kind = plaintext[32]
            let payloadLength = Int(plaintext.readLittleEndian(UInt32.self, at: 33))
            guard storeId == header.storeId, generation == header.generation else {
                throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(offset): the record belongs to another store or file generation")
            }
            guard sequence == expectedSequence else {
                throw OpenError(
                    kind: .damaged,
                    message: "\(path) is damaged at byte offset \(offset): record sequence \(sequence) where \(expectedSequence) was expected (records moved or removed)")
            }
            guard identitySize + payloadLength <= plaintext.count,
                plaintext[(identitySize + payloadLength)...].allSatisfy({ $0 == 0 })
            else {
                throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(offset): bad payload length")
            }
            records.append(Record(offset: offset, sequence: sequence, kind: kind, payload: Array(plaintext[identitySize..<(identitySize + payloadLength)])))
            expectedSequence += 1
            validLength = span.upperBound
        }
        if tornTail == nil {
            switch stop {
            case .end: break
            case .torn(let offset, let reason): tornTail = (offset, reason)
            case .damaged(let offset, let reason): throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(offset): \(reason)")
            }
        }
        return Scan(header: header, records: records, validLength: tornTail?.0 ?? validLength, tornTail: tornTail)
    }

    /// Where the framing walk stopped.
    enum Stop {
        case end
        case torn(Int, String)
        case damaged(Int, String)
    }

    /// The byte ranges of the records whose framing checks (no decryption), and why the walk stopped.
    static func walkFraming(_ bytes: [UInt8], keys: Keys) -> (spans: [Range<Int>], stop: Stop) {
        var spans: [Range<Int>] = []
        var offset = headerSize
        var stop = Stop.end
        while offset < bytes.count {
            let remaining = bytes.count - offset
            if remaining < framingSize {
                stop = .torn(offset, "a record header cut short (\(remaining) of \(framingSize) bytes)")
                break
            }
            let length = bytes.readLittleEndian(UInt32.self, at: offset)
            let check = bytes.readLittleEndian(UInt32.self, at: offset + 4)
            let framingValid = check == framingCheck(offset: offset, length: length, keys: keys)
                && Int(length) >= SecretBox.overhead + identitySize && Int(length) <= maxBoxBytes
            if !framingValid {
                stop = bytes[offset...].allSatisfy({ $0 == 0 })
                    ? .torn(offset, "zero-filled space after the last record")
                    : .damaged(offset, "record framing check failed")
                break
            }
            let end = offset + framingSize + Int(length)
            if end > bytes.count {
                stop = .torn(offset, "a record cut short (\(remaining) of \(framingSize + Int(length)) bytes)")
                break
            }
            spans.append(offset..<end)
            offset = end
        }

        return (spans, stop)
    }

    /// The last record only, for appending to a log without reading all of it: its plaintext payload,
    /// its bytes, and the count and valid length of the log. Framing damage anywhere is refused;
    /// a torn last record is dropped as `scan` does. (Damage inside earlier records is found by a
    /// full `scan`, which `grantex-vault audit verify` runs.)
    struct Tail {
        var header: Header
        var last: (record: Record, bytes: ArraySlice<UInt8>)?
        var recordCount: Int
        var validLength: Int
        var tornTail: (offset: Int, reason: String)?
    }

    static func tail(_ bytes: [UInt8], path: String, expectedKind: FileKind, keys: Keys) throws(OpenError) -> Tail {
        let header = try readHeader(bytes, path: path, expectedKind: expectedKind, keys: keys)
        var (spans, stop) = walkFraming(bytes, keys: keys)
        var tornTail: (Int, String)? = nil
        switch stop {
        case .end: break
        case .torn(let offset, let reason): tornTail = (offset, reason)
        case .damaged(let offset, let reason): throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(offset): \(reason)")
        }
        while let span = spans.last {
            let opened = bytes.withUnsafeBytes { keys.box.open(UnsafeRawBufferPointer(rebasing: $0[(span.lowerBound + framingSize)..<span.upperBound])) }
            guard var plaintext = opened else {
                if tornTail == nil {
                    tornTail = (span.lowerBound, SealedLog.lastRecordFailsAuthentication)
                    spans.removeLast()
                    continue
                }
                throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(span.lowerBound): record fails authentication")
            }
            defer { Sodium.wipe(&plaintext) }
            let payloadLength = Int(plaintext.readLittleEndian(UInt32.self, at: 33))
            guard Array(plaintext[0..<16]) == header.storeId, plaintext.readLittleEndian(UInt64.self, at: 16) == header.generation,
                plaintext.readLittleEndian(UInt64.self, at: 24) == UInt64(spans.count),
                identitySize + payloadLength <= plaintext.count
            else {
                throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(span.lowerBound): the last record's identity does not match its position")
            }
            let record = Record(
                offset: span.lowerBound, sequence: UInt64(spans.count), kind: plaintext[32],
                payload: Array(plaintext[identitySize..<(identitySize + payloadLength)]))
            return Tail(header: header, last: (record, bytes[span]), recordCount: spans.count, validLength: span.upperBound, tornTail: tornTail)
        }
        return Tail(header: header, last: nil, recordCount: 0, validLength: tornTail?.0 ?? headerSize, tornTail: tornTail)
    }

    static func readHeader(_ bytes: [UInt8], path: String, expectedKind: FileKind, keys: Keys) throws(OpenError) -> Header {
        guard bytes.count >= headerSize else {
            throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset \(bytes.count): file shorter than its \(headerSize)-byte header")
        }
        guard Array(bytes[0..<8]) == magic else {
            throw OpenError(kind: .unsupported, message: "\(path) is not a grantex-vault file (bad magic at byte offset 0)")
        }
        let version = bytes.readLittleEndian(UInt16.self, at: 8)
        guard version == formatVersion else {
            throw OpenError(kind: .unsupported, message: "\(path) has format version \(version); this grantex-vaultd reads version \(formatVersion)")
        }
        guard let kind = FileKind(rawValue: bytes.readLittleEndian(UInt16.self, at: 10)), kind == expectedKind else {
            throw OpenError(kind: .unsupported, message: "\(path) holds another kind of grantex-vault file (byte offset 10)")
        }
        guard Sodium.equal(Array(bytes[48..<64]), keys.keyCheck) else {
            throw OpenError(kind: .wrongKey, message: "\(path) was sealed with a different master key; refusing to start (nothing was changed)")
        }
        guard Sodium.equal(Array(bytes[64..<80]), Sodium.keyedHash(Array(bytes[0..<64]), key: keys.headerAuthentication)) else {
            throw OpenError(kind: .damaged, message: "\(path) is damaged at byte offset 0: header authentication failed")
        }
        return Header(
            kind: kind, storeId: Array(bytes[16..<32]), generation: bytes.readLittleEndian(UInt64.self, at: 32),
            createdAt: bytes.readLittleEndian(Int64.self, at: 40))
    }
}
