import Foundation
import Testing
import VaultProtocol
@testable import VaultCore

/// The crash and damage rules of the store: a torn tail is dropped with a warning; anything else
/// refuses to open with the file and offset; a wrong key changes nothing.
@Suite("Store damage rules")
struct StoreDamageTests {
    /// A store with three credentials; returns its log bytes and the offset where each record starts.
    private func makeStore(in dir: TemporaryDirectory, tokens: [String] = ["token-one", "token-two", "token-333"]) async throws -> (bytes: [UInt8], offsets: [Int]) {
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        var offsets: [Int] = []
        for (index, token) in tokens.enumerated() {
            offsets.append(store.fileStatistics.bytes)
            _ = try await store.store(try storeParams("p\(index)", "github", token: token))
        }
        store.close()
        return (readFile(dir.file("vault.log")), offsets)
    }

    private func openCopy(_ bytes: [UInt8], logs: CapturingLogHandler = CapturingLogHandler(), masterKey: MasterKey = key(1)) throws(StoreOpenError) -> (CredentialStore, TemporaryDirectory) {
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o700)
        writeFile(dir.file("vault.log"), bytes)
        chmod(dir.file("vault.log"), 0o600)
        let store = try CredentialStore.open(directory: dir.path, masterKey: masterKey, logger: makeLogger(logs))
        return (store, dir)
    }

    @Test("a torn last record is dropped with a warning, at every byte offset, and writes resume")
    func tornTailEveryOffset() async throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try await makeStore(in: dir)
        let lastStart = offsets[2]
        #expect(lastStart < bytes.count)
        for cut in lastStart..<bytes.count {
            let logs = CapturingLogHandler()
            let (store, copy) = try openCopy(Array(bytes[..<cut]), logs: logs)
            #expect(store.count == 2, "cut at \(cut)")
            #expect(store.credential(for: CredentialKey(principalId: "p2", service: "github")) == nil)
            let warned = logs.all.contains { $0.hasPrefix("warning") && $0.contains("torn") }
            #expect(warned == (cut > lastStart), "cut at \(cut)")
            if cut == lastStart + 1 || cut == bytes.count - 1 {
                // The file was cut back to its valid length, so new writes land cleanly and survive.
                _ = try await store.store(try storeParams("after", "github"))
                store.close()
                let reopened = try CredentialStore.open(directory: copy.path, masterKey: key(1), logger: makeLogger())
                #expect(reopened.count == 3)
                reopened.close()
            } else {
                store.close()
            }
        }
    }

    @Test("a zero-filled tail (preallocated or partly persisted page) is dropped too")
    func zeroTail() async throws {
        let dir = TemporaryDirectory()
        let (bytes, _) = try await makeStore(in: dir)
        let (store, _) = try openCopy(bytes + [UInt8](repeating: 0, count: 300))
        #expect(store.count == 3)
        store.close()
    }

    @Test("damage before the last record refuses to open, naming the file and offset")
    func damageInTheMiddle() async throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try await makeStore(in: dir)
        // One flipped bit in each region: framing of record 1, its nonce, its ciphertext; record 2's.
        for position in [offsets[0], offsets[0] + 5, offsets[0] + 10, offsets[0] + 60, offsets[1] + 100, offsets[2] - 1] {
            var damaged = bytes
            damaged[position] ^= 0x10
            do {
                let (store, _) = try openCopy(damaged)
                store.close()
                Issue.record("opened a store damaged at \(position)")
            } catch {
                #expect(error.kind == .damaged, "\(position): \(error.message)")
                #expect(error.message.contains("vault.log"))
                #expect(error.message.contains("offset"))
            }
        }
    }

    @Test("a damaged header refuses to open")
    func damagedHeader() async throws {
        let dir = TemporaryDirectory()
        let (bytes, _) = try await makeStore(in: dir)
        for position in [0, 9, 20, 35, 70] {
            var damaged = bytes
            damaged[position] ^= 0x01
            #expect(throws: StoreOpenError.self) {
                let (store, _) = try openCopy(damaged)
                store.close()
            }
        }
    }

    @Test("records swapped between positions are detected by their sealed sequence numbers")
    func swappedRecords() async throws {
        let dir = TemporaryDirectory()
        let (bytes, offsets) = try await makeStore(in: dir)
        let first = Array(bytes[offsets[0]..<offsets[1]])
        let second = Array(bytes[offsets[1]..<offsets[2]])
        #expect(first.count == second.count)
        // Keep each record's framing check valid for its new offset by moving only the sealed boxes.
        var swapped = bytes
        swapped.replaceSubrange((offsets[0] + 8)..<offsets[1], with: second[8...])
        swapped.replaceSubrange((offsets[1] + 8)..<offsets[2], with: first[8...])
        do {
            let (store, _) = try openCopy(swapped)
            store.close()
            Issue.record("opened a store with swapped records")
        } catch {
            #expect(error.kind == .damaged)
            #expect(error.message.contains("sequence"))
        }
        // A record removed from the middle (the rest moved up) is detected the same way.
        var removed = Array(bytes[..<offsets[1]]) + Array(bytes[offsets[2]...])
        removed.replaceSubrange(offsets[1]..<(offsets[1] + 8), with: bytes[offsets[2]..<(offsets[2] + 8)])
        #expect(throws: StoreOpenError.self) {
            let (store, _) = try openCopy(removed)
            store.close()
        }
    }

    @Test("a record from another store sealed with the same key is refused, even at the tail")
    func recordFromAnotherStore() async throws {
        let dirA = TemporaryDirectory()
        let dirB = TemporaryDirectory()
        let (bytesA, _) = try await makeStore(in: dirA)
        let (bytesB, offsetsB) = try await makeStore(in: dirB)
        // Same length and same position: only the sealed identity tells them apart.
        var spliced = bytesA
        spliced.replaceSubrange((offsetsB[2] + 8)..<bytesA.count, with: bytesB[(offsetsB[2] + 8)...])
        do {
            let (store, _) = try openCopy(spliced)
            store.close()
            Issue.record("accepted a foreign record")
        } catch {
            #expect(error.message.contains("another store"))
        }
    }

    @Test("the wrong key refuses to open and changes nothing in the directory")
    func wrongKeyTouchesNothing() async throws {
        let dir = TemporaryDirectory()
        let (bytes, _) = try await makeStore(in: dir)
        unlink(dir.file("vault.lock"))
        let before = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        do {
            _ = try CredentialStore.open(directory: dir.path, masterKey: key(2), logger: makeLogger())
            Issue.record("opened with the wrong key")
        } catch {
            #expect(error.kind == .wrongKey)
            #expect(error.message.contains("different master key"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == before)
        #expect(readFile(dir.file("vault.log")) == bytes)
    }

    @Test("a store large enough to be opened on all cores keeps every rule: reload, torn tail, damage in the middle")
    func largeStoreParallelLoad() async throws {
        let dir = TemporaryDirectory()
        let store = try CredentialStore.open(directory: dir.path, masterKey: key(1), logger: makeLogger())
        var offsets: [Int] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<1500 {
                group.addTask { _ = try await store.store(try storeParams("p\(index)", "svc", token: "token-\(index)")) }
            }
            try await group.waitForAll()
        }
        offsets.append(store.fileStatistics.bytes)
        _ = try await store.store(try storeParams("last", "svc", token: "last-token"))
        store.close()
        let bytes = readFile(dir.file("vault.log"))

        let (whole, _) = try openCopy(bytes)
        #expect(whole.count == 1501)
        let p700 = try #require(whole.credential(for: CredentialKey(principalId: "p700", service: "svc")))
        #expect(whole.secrets(of: p700)?.accessToken == "token-700")
        whole.close()

        let logs = CapturingLogHandler()
        let (torn, _) = try openCopy(Array(bytes[..<(bytes.count - 5)]), logs: logs)
        #expect(torn.count == 1500)
        #expect(logs.all.contains { $0.contains("torn") })
        torn.close()

        let middle = SealedLog.headerSize + (offsets[0] - SealedLog.headerSize) / 2
        var damaged = bytes
        damaged[middle] ^= 0x04
        do {
            let (opened, _) = try openCopy(damaged)
            opened.close()
            Issue.record("opened a large store damaged in the middle")
        } catch {
            #expect(error.kind == .damaged)
            #expect(error.message.contains("offset"))
        }
    }
}
