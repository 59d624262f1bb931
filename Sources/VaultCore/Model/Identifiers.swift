import CSodium
import VaultProtocol

/// ULIDs (https://github.com/ulid/spec): 48-bit millisecond time + 80 random bits in Crockford base32.
/// Sortable by creation time, which keeps `vault.list` order and id order in step.
public enum ULID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// A new ULID for time `now`.
    public static func make(at now: Timestamp) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let ms = UInt64(max(0, now.millisecondsSinceEpoch))
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: ms >> (8 * (5 - i))) }
        bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress! + 6, 10) }
        // 128 bits -> 26 base32 characters; the first carries only 3 bits.
        var out = [UInt8](repeating: 0, count: 26)
        var value = (UInt64(bytes[0]) << 56 | UInt64(bytes[1]) << 48 | UInt64(bytes[2]) << 40 | UInt64(bytes[3]) << 32
            | UInt64(bytes[4]) << 24 | UInt64(bytes[5]) << 16 | UInt64(bytes[6]) << 8 | UInt64(bytes[7]), UInt64(0))
        for i in 8..<16 { value.1 = value.1 << 8 | UInt64(bytes[i]) }
        for position in (0..<26).reversed() {
            let digit = Int(value.1 & 0x1F)
            out[position] = alphabet[digit]
            // shift the 128-bit (hi, lo) right by 5
            value.1 = value.1 >> 5 | (value.0 & 0x1F) << 59
            value.0 >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Identifier formats of the vault.
public enum VaultIdentifier {
    /// `vault_` + ULID.
    public static func credential(at now: Timestamp) -> String { "vault_" + ULID.make(at: now) }
}
