import CSodium

/// `crypto_secretbox` (XSalsa20-Poly1305) with a fresh random 24-byte nonce per message.
///
/// Why random nonces are safe here: a 192-bit nonce makes a collision negligible (birthday bound
/// around 2^96 messages) even with no counter state, so a key can seal every record of a store for its
/// whole life, including after crashes that would reset a counter.
public struct SecretBox: Sendable {
    /// Bytes a sealed box adds to its plaintext: the nonce and the Poly1305 tag.
    public static let overhead = Int(crypto_secretbox_NONCEBYTES) + Int(crypto_secretbox_MACBYTES)
    public static let keyBytes = Int(crypto_secretbox_KEYBYTES)

    private let key: SecureBytes

    public init(key: SecureBytes) {
        precondition(key.count == Self.keyBytes, "secretbox keys are 32 bytes")
        self.key = key
    }

    /// A key that lives only in this process's guarded memory, for sealing secrets held in RAM.
    public static func ephemeral() -> SecretBox {
        SecretBox(key: .random(count: keyBytes))
    }

    /// `nonce || tag || ciphertext` of `plaintext`.
    public func seal(_ plaintext: [UInt8]) -> [UInt8] {
        let nonceBytes = Int(crypto_secretbox_NONCEBYTES)
        var out = [UInt8](repeating: 0, count: Self.overhead + plaintext.count)
        out.withUnsafeMutableBytes { o in
            let base = o.baseAddress!.assumingMemoryBound(to: UInt8.self)
            randombytes_buf(base, nonceBytes)
            key.withUnsafeBytes { k in
                plaintext.withUnsafeBytes { p in
                    _ = crypto_secretbox_easy(
                        base + nonceBytes, p.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                        base, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return out
    }

    /// The plaintext of a box made by `seal`, or nil when it was not sealed under this key or was altered.
    public func open(_ box: UnsafeRawBufferPointer) -> [UInt8]? {
        let nonceBytes = Int(crypto_secretbox_NONCEBYTES)
        guard box.count >= Self.overhead else { return nil }
        var plaintext = [UInt8](repeating: 0, count: box.count - Self.overhead)
        let status = plaintext.withUnsafeMutableBytes { p -> Int32 in
            key.withUnsafeBytes { k in
                let base = box.baseAddress!.assumingMemoryBound(to: UInt8.self)
                return crypto_secretbox_open_easy(
                    p.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafeMutablePointer(mutating: base),
                    base + nonceBytes, UInt64(box.count - nonceBytes), base, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return status == 0 ? plaintext : nil
    }

    /// `open` over an array.
    public func open(_ box: [UInt8]) -> [UInt8]? {
        box.withUnsafeBytes { open($0) }
    }
}
