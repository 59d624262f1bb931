import Foundation

/// POSIX file operations with the durability rules of the store: every write fully written,
/// `fdatasync`/`fsync` checked, directories synced after a create or rename.
/// `close(2)`, under a name that no type's `close()` method shadows.
func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}

enum Durable {
    /// An `errno` from a file operation, with what was being done and to which path.
    struct IOError: Error, CustomStringConvertible {
        var operation: String
        var path: String
        var code: Int32
        /// Bytes that reached the file before the error (for a failed write).
        var bytesWritten = 0
        var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
        var isNoSpace: Bool { code == ENOSPC || code == EDQUOT }
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and EINTR.
    static func pwriteAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int64, path: String) throws(IOError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(operation: "write", path: path, code: errno, bytesWritten: done)
            }
            done += n
        }
    }

    static func dataSync(_ fd: Int32, path: String) throws(IOError) {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw IOError(operation: "fdatasync", path: path, code: errno)
        }
    }

    static func fullSync(_ fd: Int32, path: String) throws(IOError) {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw IOError(operation: "fsync", path: path, code: errno)
        }
    }

    /// Makes a create, rename or unlink in `directory` durable.
    @discardableResult
    static func syncDirectory(_ directory: String) -> Bool {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return fsync(fd) == 0
    }

    @discardableResult
    static func syncDirectory(containing path: String) -> Bool {
        syncDirectory((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent)
    }

    /// Reads the whole file open at `fd`.
    static func readAll(_ fd: Int32, path: String) throws(IOError) -> [UInt8] {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw IOError(operation: "stat", path: path, code: errno) }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(operation: "read", path: path, code: errno)
            }
            if n == 0 { break }
            done += n
        }
        bytes.removeSubrange(done...)
        return bytes
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    func readLittleEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        Swift.withUnsafeMutableBytes(of: &value) { dest in
            self.withUnsafeBytes { src in dest.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<offset + MemoryLayout<T>.size])) }
        }
        return T(littleEndian: value)
    }
}
