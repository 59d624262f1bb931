/// The credentials of the process at the other end of a connection, as the kernel reports them
/// (`SO_PEERCRED`) when it connected.
public struct Peer: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }
}

/// Who may call the management methods: root, the daemon's own uid, and the uids/gids the operator
/// allowed. This replaces the developer API key of the hosted vault.
///
/// The gid checked is the peer's effective gid at connect time (what `SO_PEERCRED` reports), not
/// its supplementary groups: run admin tools with `sg <group>` or list their uids.
public struct AccessPolicy: Sendable {
    public var daemonUid: UInt32
    public var adminUids: Set<UInt32>
    public var adminGids: Set<UInt32>

    public init(daemonUid: UInt32, adminUids: Set<UInt32> = [], adminGids: Set<UInt32> = []) {
        self.daemonUid = daemonUid
        self.adminUids = adminUids
        self.adminGids = adminGids
    }

    /// True when `peer` may call `vault.store`, `vault.list`, `vault.get`, `vault.delete`,
    /// `grants.*` and `system.status`.
    public func mayManage(_ peer: Peer) -> Bool {
        peer.uid == 0 || peer.uid == daemonUid || adminUids.contains(peer.uid) || adminGids.contains(peer.gid)
    }
}
