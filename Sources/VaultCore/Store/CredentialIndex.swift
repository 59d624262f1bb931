import Foundation
import VaultProtocol

/// Position of a credential in `vault.list` order: newest `createdAt` first, ties by `id` descending.
/// Stored ascending; listing walks it backwards.
struct ListPosition: Comparable, Hashable {
    var createdAt: Int64
    var id: String

    static func < (lhs: ListPosition, rhs: ListPosition) -> Bool {
        (lhs.createdAt, lhs.id) < (rhs.createdAt, rhs.id)
    }

    /// The opaque cursor handed to clients: `c1.` + base64url of `createdAt:id`.
    var cursor: String {
        let raw = Data("\(createdAt):\(id)".utf8).base64EncodedString()
        return "c1." + raw.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    init(createdAt: Int64, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    init(cursor: String) throws(VaultError) {
        let invalid = VaultError.badRequest("Parameter 'cursor' is not a cursor returned by vault.list")
        guard cursor.hasPrefix("c1."), cursor.utf8.count <= 200 else { throw invalid }
        var base64 = String(cursor.dropFirst(3)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":"), let ms = Int64(text[..<colon]),
            text[text.index(after: colon)...].hasPrefix("vault_")
        else { throw invalid }
        self.init(createdAt: ms, id: String(text[text.index(after: colon)...]))
    }
}

/// The committed credentials, indexed for every query the protocol has: by id, by
/// (principal, service), by principal, and in list order.
struct CredentialIndex {
    private(set) var byId: [String: StoredCredential] = [:]
    private var idByKey: [CredentialKey: String] = [:]
    private var idsByPrincipal: [String: [String: String]] = [:]  // principal -> service -> id
    private var order: [ListPosition] = []  // ascending

    var count: Int { byId.count }

    func credential(id: String) -> StoredCredential? { byId[id] }

    func credential(for key: CredentialKey) -> StoredCredential? {
        idByKey[key].flatMap { byId[$0] }
    }

    /// Inserts or replaces (by id). A credential for the same key under another id is removed first.
    mutating func upsert(_ credential: StoredCredential) {
        if let other = idByKey[credential.key], other != credential.id { remove(id: other) }
        if let previous = byId[credential.id] {
            if previous.key != credential.key { removeKey(previous.key) }
            if previous.createdAt != credential.createdAt {
                removePosition(ListPosition(createdAt: previous.createdAt.millisecondsSinceEpoch, id: previous.id))
                insertPosition(ListPosition(createdAt: credential.createdAt.millisecondsSinceEpoch, id: credential.id))
            }
        } else {
            insertPosition(ListPosition(createdAt: credential.createdAt.millisecondsSinceEpoch, id: credential.id))
        }
        byId[credential.id] = credential
        idByKey[credential.key] = credential.id
        idsByPrincipal[credential.principalId, default: [:]][credential.service] = credential.id
    }

    /// Removes a credential; returns it, or nil when there was none.
    @discardableResult
    mutating func remove(id: String) -> StoredCredential? {
        guard let credential = byId.removeValue(forKey: id) else { return nil }
        removeKey(credential.key)
        removePosition(ListPosition(createdAt: credential.createdAt.millisecondsSinceEpoch, id: id))
        return credential
    }

    private mutating func removeKey(_ key: CredentialKey) {
        idByKey[key] = nil
        idsByPrincipal[key.principalId]?[key.service] = nil
        if idsByPrincipal[key.principalId]?.isEmpty == true { idsByPrincipal[key.principalId] = nil }
    }

    private func lowerBound(_ position: ListPosition) -> Int {
        var low = 0
        var high = order.count
        while low < high {
            let mid = (low + high) / 2
            if order[mid] < position { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private mutating func insertPosition(_ position: ListPosition) {
        // New credentials are almost always the newest: appending is the common case.
        if let last = order.last, last < position {
            order.append(position)
        } else {
            order.insert(position, at: lowerBound(position))
        }
    }

    private mutating func removePosition(_ position: ListPosition) {
        let index = lowerBound(position)
        if index < order.count, order[index] == position { order.remove(at: index) }
    }

    /// One page of `vault.list`: up to `limit` credentials after `cursor` in list order, and the
    /// position to continue from when more match.
    func page(principalId: String?, service: String?, limit: Int, after cursor: ListPosition?) -> ([StoredCredential], ListPosition?) {
        var result: [StoredCredential] = []
        result.reserveCapacity(min(limit, 128))
        var more = false
        func take(_ position: ListPosition) -> Bool {  // false: stop
            guard let credential = byId[position.id] else { return true }
            if let service, credential.service != service { return true }
            if let principalId, credential.principalId != principalId { return true }
            if result.count == limit {
                more = true
                return false
            }
            result.append(credential)
            return true
        }
        if let principalId {
            // Few credentials per principal: sort just those.
            let ids = idsByPrincipal[principalId].map { Array($0.values) } ?? []
            var positions = ids.compactMap { id in byId[id].map { ListPosition(createdAt: $0.createdAt.millisecondsSinceEpoch, id: id) } }
            positions.sort(by: >)
            for position in positions where cursor.map({ position < $0 }) ?? true {
                if !take(position) { break }
            }
        } else {
            var index = (cursor.map { lowerBound($0) } ?? order.count) - 1
            while index >= 0 {
                if !take(order[index]) { break }
                index -= 1
            }
        }
        let next = more ? result.last.map { ListPosition(createdAt: $0.createdAt.millisecondsSinceEpoch, id: $0.id) } : nil
        return (result, next)
    }
}
