import CVaultSystem
import Foundation
import Logging
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
