import CSodium

/// Thin, typed access to the libsodium primitives the vault uses. libsodium is initialised on first use.
public enum Sodium {
    private static let initialised: Bool = sodium_init() >= 0

    /// Initialises libsodium; traps if it cannot (no usable randomness source: nothing safe can follow).
    public static func ensureInitialised() {
        precondition(initialised, "libsodium failed to initialise")
    }

    /// `count` bytes from the operating system's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        ensureInitialised()
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return bytes
    }

    /// Overwrites `bytes` with zeros in a way the compiler may not optimise away. Best effort for
    /// Swift arrays: copies made by the runtime before this call are out of reach.
    public static func wipe(_ bytes: inout [UInt8]) {
        let count = bytes.count
        bytes.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress { sodium_memzero(base, count) }
        }
    }

    /// Constant-time comparison.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 } }
    }

    /// Keyed BLAKE2b of `message`, `outputLength` bytes (16...64).
    public static func keyedHash(_ message: [UInt8], key: SecureBytes, outputLength: Int = 16) -> [UInt8] {
        ensureInitialised()
        var out = [UInt8](repeating: 0, count: outputLength)
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                _ = crypto_generichash(
                    &out, outputLength, m.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count)
            }
        }
        return out
    }

    /// Unkeyed BLAKE2b-256 of `message`.
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        ensureInitialised()
        var out = [UInt8](repeating: 0, count: 32)
        message.withUnsafeBytes { m in
            _ = crypto_generichash(&out, 32, m.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count), nil, 0)
        }
        return out
    }

    /// SipHash-2-4 of `message` under a 16-byte key: a fast keyed checksum (not a MAC for secrets).
    public static func shortHash(_ message: [UInt8], key: SecureBytes) -> UInt64 {
        precondition(key.count == Int(crypto_shorthash_KEYBYTES))
        var out = [UInt8](repeating: 0, count: Int(crypto_shorthash_BYTES))
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                _ = crypto_shorthash(&out, m.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return out.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
}

/// Bytes in libsodium's guarded memory (`sodium_malloc`): locked into RAM so they are never swapped,
/// surrounded by guard pages, kept read-only after creation, and zeroed when released.
///
/// `@unchecked Sendable` is safe: the bytes are written once inside `init` and only read afterwards
/// (the pages are `sodium_mprotect_readonly`, so a stray write would fault, not race).
public final class SecureBytes: @unchecked Sendable {
    private let pointer: UnsafeMutableRawPointer
    /// Number of bytes.
    public let count: Int

    /// Allocates `count` guarded bytes and lets `fill` write them once.
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        Sodium.ensureInitialised()
        guard let pointer = sodium_malloc(count) else { fatalError("sodium_malloc(\(count)) failed: out of memory") }
        self.pointer = pointer
        self.count = count
        do {
            try fill(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            sodium_free(pointer)
            throw error
        }
        sodium_mprotect_readonly(pointer)
    }

    /// Copies `bytes` into guarded memory and wipes the source array.
    public convenience init(wiping bytes: inout [UInt8]) {
        let source = bytes
        self.init(count: source.count) { buffer in
            source.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
        Sodium.wipe(&bytes)
    }

    /// `count` random bytes.
    public static func random(count: Int) -> SecureBytes {
        SecureBytes(count: count) { randombytes_buf($0.baseAddress!, count) }
    }

    /// Read access to the bytes; do not let the pointer escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    deinit {
        // sodium_free makes the region writable, zeroes it and unlocks it before releasing it.
        sodium_free(pointer)
    }
}
