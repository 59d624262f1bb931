import Glibc

/// A `sockaddr_un` for a filesystem path, or an abstract name (first byte 0), with its length.
struct UnixSocketAddress {
    private var storage = sockaddr_un()
    let length: socklen_t

    /// nil when the name is empty or does not fit `sun_path`.
    init?(_ name: [UInt8]) {
        storage.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        let abstract = name.first == 0
        guard !name.isEmpty, abstract ? name.count <= capacity : name.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: name) }
        // A path is NUL-terminated; an abstract name is exactly its bytes.
        length = socklen_t(MemoryLayout<sa_family_t>.size + name.count + (abstract ? 0 : 1))
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var copy = storage
        return withUnsafePointer(to: &copy) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}
