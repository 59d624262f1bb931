import Foundation
import Testing
@testable import VaultCore

@Suite("Sealing and keys")
struct CryptoTests {
    @Test("a sealed box opens with its key and yields the plaintext")
    func roundTrip() {
        let box = SecretBox.ephemeral()
        let plaintext = Array("gho_secret_token".utf8)
        let sealed = box.seal(plaintext)
        #expect(sealed.count == plaintext.count + SecretBox.overhead)
        #expect(!sealed.contains(subsequence: plaintext))
        #expect(box.open(sealed) == plaintext)
    }

    @Test("two seals of one plaintext differ (fresh nonce each time)")
    func freshNonces() {
        let box = SecretBox.ephemeral()
        #expect(box.seal([1, 2, 3]) != box.seal([1, 2, 3]))
    }

    @Test("every single-bit flip of a box is detected")
    func tamper() {
        let box = SecretBox.ephemeral()
        let sealed = box.seal(Array("payload".utf8))
        for index in sealed.indices {
            for bit in 0..<8 {
                var damaged = sealed
                damaged[index] ^= 1 << bit
                #expect(box.open(damaged) == nil)
            }
        }
    }

    @Test("a box does not open under another key")
    func wrongKey() {
        let sealed = SecretBox.ephemeral().seal([9, 9, 9])
        #expect(SecretBox.ephemeral().open(sealed) == nil)
    }

    @Test("subkeys differ by purpose and by master key, and are stable")
    func subkeys() {
        func bytes(_ key: SecureBytes) -> [UInt8] { key.withUnsafeBytes { Array($0) } }
        let master = key(1)
        #expect(bytes(master.subkey(.storeRecords)) == bytes(key(1).subkey(.storeRecords)))
        #expect(bytes(master.subkey(.storeRecords)) != bytes(master.subkey(.auditRecords)))
        #expect(bytes(master.subkey(.storeRecords)) != bytes(key(2).subkey(.storeRecords)))
    }

    @Test("key files: hex, base64 and raw forms decode; anything else is refused")
    func keyFileForms() {
        let raw = (0..<32).map { UInt8($0) }
        let hex = raw.map { String(format: "%02x", $0) }.joined()
        #expect(KeyFile.decode(Array(hex.utf8)) == raw)
        #expect(KeyFile.decode(Array((hex.uppercased() + "\n").utf8)) == raw)
        #expect(KeyFile.decode(Array((Data(raw).base64EncodedString() + "\n").utf8)) == raw)
        #expect(KeyFile.decode(raw) == raw)
        #expect(KeyFile.decode(Array(hex.dropLast(2).utf8)) == nil)
        #expect(KeyFile.decode(Array(("zz" + hex.dropFirst(2)).utf8)) == nil)
        #expect(KeyFile.decode(Array(repeating: 1, count: 31)) == nil)
        #expect(KeyFile.decode(Array(repeating: 1, count: 33)) == nil)
    }

    @Test("keygen writes a 0600 key that loads, and refuses to overwrite")
    func keygen() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("vault.key")
        try KeyFile.generate(path: path)
        var info = stat()
        stat(path, &info)
        #expect(info.st_mode & 0o777 == 0o600)
        _ = try KeyFile.load(path: path)
        #expect(throws: KeyFileError.self) { try KeyFile.generate(path: path) }
    }

    @Test("a key file readable by group or others is refused, naming the file")
    func keyFilePermissions() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("vault.key")
        try KeyFile.generate(path: path)
        chmod(path, 0o640)
        do {
            _ = try KeyFile.load(path: path)
            Issue.record("loaded a group-readable key")
        } catch {
            #expect(error.message.contains(path))
            #expect(error.message.contains("group or others"))
        }
    }

    @Test("a missing key file names the file and the keygen command")
    func missingKey() {
        do {
            _ = try KeyFile.load(path: "/nonexistent/vault.key")
            Issue.record("loaded a missing key")
        } catch {
            #expect(error.message.contains("/nonexistent/vault.key"))
            #expect(error.message.contains("grantex-vault keygen"))
        }
    }
}
