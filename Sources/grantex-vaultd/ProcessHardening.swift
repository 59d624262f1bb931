import CVaultSystem
import Foundation
import Logging
import ServiceLifecycle
import VaultServer

/// Process-level protections that hold with or without systemd (ssh-agent does the same): no core
/// dumps and no ptrace attach by same-uid processes, so the master key and tokens in memory cannot
/// be read through them.
enum ProcessHardening {
    static func apply() {
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        _ = vault_set_non_dumpable()
    }
}

/// SIGHUP: reload the config file and the JWKS, told to systemd as RELOADING=1 ... READY=1.
final class ReloadSignal {
    private let source: DispatchSourceSignal

    init(logger: Logger, reload: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let micros = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
            Systemd.notify("RELOADING=1\nMONOTONIC_USEC=\(micros)")
            logger.info("SIGHUP received: reloading")
            reload()
            Systemd.notify("READY=1")
        }
        source.resume()
        self.source = source
    }

    func cancel() {
        source.cancel()
    }
}

/// SIGTERM and SIGINT, caught from the first moment of the process: a signal that arrives while the
/// daemon is still starting (socket activation answers the first connection early) is remembered and
/// becomes a graceful shutdown as soon as the service group exists, instead of killing the process
/// by the default action.
final class ShutdownSignals: @unchecked Sendable {
    // @unchecked: `group` and `pending` are only touched under `lock`; the sources are immutable.
    private let lock = NSLock()
    private var group: ServiceGroup?
    private var pending = false
    private var sources: [DispatchSourceSignal] = []

    init() {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.received() }
            source.resume()
            sources.append(source)
        }
    }

    private func received() {
        let target: ServiceGroup? = lock.withLock {
            pending = true
            return group
        }
        if let target { Task { await target.triggerGracefulShutdown() } }
    }

    /// Hands over to `group`; a signal received before is delivered now.
    func attach(_ group: ServiceGroup) async {
        let deliver = lock.withLock {
            self.group = group
            return pending
        }
        if deliver { await group.triggerGracefulShutdown() }
    }

    /// True when SIGTERM or SIGINT was received.
    var requested: Bool { lock.withLock { pending } }
}
