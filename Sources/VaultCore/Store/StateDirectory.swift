import Foundation

/// The state directory: created 0700 when missing; refused when others could write to it (they
/// could replace the store or plant a symlink).
enum StateDirectory {
    static func prepare(_ path: String) throws(StoreOpenError) {
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else {
                throw StoreOpenError(kind: .io, message: "cannot inspect state directory \(path): \(String(cString: strerror(errno)))")
            }
            let parent = (path as NSString).deletingLastPathComponent
            if !parent.isEmpty {
                try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
            guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
                throw StoreOpenError(kind: .io, message: "cannot create state directory \(path): \(String(cString: strerror(errno)))")
            }
            chmod(path, 0o700)
            Durable.syncDirectory(containing: path)
            guard stat(path, &info) == 0 else {
                throw StoreOpenError(kind: .io, message: "cannot inspect state directory \(path): \(String(cString: strerror(errno)))")
            }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw StoreOpenError(kind: .io, message: "state directory \(path) is not a directory")
        }
        let mode = info.st_mode & 0o777
        if mode & 0o022 != 0 {
            throw StoreOpenError(
                kind: .insecure,
                message: "state directory \(path) is writable by group or others (mode \(String(mode, radix: 8))); run `chmod 700 \(path)`")
        }
    }
}
