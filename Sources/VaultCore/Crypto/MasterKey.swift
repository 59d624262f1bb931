import CSodium
import Foundation

/// The 32-byte master key and the subkeys derived from it with `crypto_kdf` (BLAKE2b), each for one
/// purpose so that no key is ever used by two constructions.
///
/// All key material lives in `SecureBytes` (guarded, locked, zeroed on release).
public final class MasterKey: Sendable {
    public static let byteCount = 32
    /// `crypto_kdf` context: exactly 8 bytes, fixed for format version 1.
    static let kdfContext = "gxvault1"

    /// Subkey ids. Never reuse a number for another purpose.
    enum Purpose: UInt64 {
        case storeRecords = 1
        case recordFraming = 2
        case keyCheck = 3
        case headerAuthentication = 4
        case auditRecords = 5
        case auditChain = 6
    }

    private let key: SecureBytes

    /// Wraps 32 bytes of key material, wiping the source array.
    public init(wiping bytes: inout [UInt8]) throws(KeyFileError) {
        guard bytes.count == Self.byteCount else { throw KeyFileError(message: "a master key is exactly 32 bytes") }
        self.key = SecureBytes(wiping: &bytes)
    }

    /// A new random key.
    public static func generate() -> MasterKey {
        var bytes = Sodium.randomBytes(byteCount)
        return try! MasterKey(wiping: &bytes)  // 32 bytes by construction
    }

    /// The subkey for `purpose`, `length` bytes (16...64).
    func subkey(_ purpose: Purpose, length: Int = 32) -> SecureBytes {
        Sodium.ensureInitialised()
        return SecureBytes(count: length) { out in
            key.withUnsafeBytes { k in
                _ = crypto_kdf_derive_from_key(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), length, purpose.rawValue, Self.kdfContext,
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// The key as 64 lower-case hex characters, for writing a key file. The string is a copy outside
    /// guarded memory: write it and drop it.
    func hexEncoded() -> String {
        key.withUnsafeBytes { Hex.encode($0) }
    }
}

/// A problem with the key file; the message names the file and what to do, never the key.
public struct KeyFileError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Reading and writing master key files.
///
/// Accepted forms: 64 hex characters, standard base64 of 32 bytes, or exactly 32 raw bytes; one
/// trailing newline is ignored. The file must be a regular file not accessible by group or others.
public enum KeyFile {
    /// Loads the key at `path`, checking its permissions first.
    public static func load(path: String) throws(KeyFileError) -> MasterKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT {
                throw KeyFileError(message: "master key file \(path) does not exist; create one with `grantex-vault keygen \(path)`")
            }
            throw KeyFileError(message: "cannot open master key file \(path): \(String(cString: strerror(err)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw KeyFileError(message: "master key file \(path) is not a regular file")
        }
        let mode = info.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw KeyFileError(
                message: "master key file \(path) is accessible by group or others (mode \(String(mode, radix: 8))); run `chmod 600 \(path)`")
        }
        var raw = [UInt8](repeating: 0, count: 129)
        let count = raw.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 129) }
        guard count >= 0 else { throw KeyFileError(message: "cannot read master key file \(path): \(String(cString: strerror(errno)))") }
        raw.removeSubrange(count...)
        defer { Sodium.wipe(&raw) }
        guard var key = decode(raw) else {
            throw KeyFileError(
                message: "master key file \(path) is malformed: expected 64 hex characters, base64 of 32 bytes, or 32 raw bytes")
        }
        return try MasterKey(wiping: &key)
    }

    /// Decodes the accepted key file forms; nil when the content is none of them.
    static func decode(_ raw: [UInt8]) -> [UInt8]? {
        var text = raw[...]
        if text.last == 0x0A { text = text.dropLast() }
        if text.last == 0x0D { text = text.dropLast() }
        if text.count == 64, let bytes = Hex.decode(text) { return bytes }
        if text.count == 44, let data = Data(base64Encoded: Data(text)), data.count == 32 { return [UInt8](data) }
        if raw.count == 32 { return raw }
        return nil
    }

    /// Writes a new random key to `path` as hex, mode 0600, refusing to overwrite, and makes it durable.
    public static func generate(path: String) throws(KeyFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let err = errno
            if err == EEXIST { throw KeyFileError(message: "\(path) already exists; refusing to overwrite a key") }
            throw KeyFileError(message: "cannot create \(path): \(String(cString: strerror(err)))")
        }
        defer { close(fd) }
        fchmod(fd, 0o600)  // in case the umask was stricter than needed; never looser
        var text = Array((MasterKey.generate().hexEncoded() + "\n").utf8)
        defer { Sodium.wipe(&text) }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard written == text.count, fsync(fd) == 0 else {
            let err = errno
            unlink(path)
            throw KeyFileError(message: "cannot write \(path): \(String(cString: strerror(err)))")
        }
        Durable.syncDirectory(containing: path)
    }
}
