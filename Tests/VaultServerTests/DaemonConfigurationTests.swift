import Foundation
import Testing
@testable import VaultServer

@Suite("Daemon configuration")
struct DaemonConfigurationTests {
    @Test("built-in defaults follow INTERFACE.md")
    func defaults() throws {
        let config = try DaemonConfiguration.resolve(flags: DaemonFlags(), environment: [:], workingDirectory: "/w")
        #expect(config.socketPath == "/run/grantex-vault/vaultd.sock")
        #expect(config.socketMode == 0o660)
        #expect(config.stateDirectory == "/var/lib/grantex-vault")
        #expect(config.keyFile == "/var/lib/grantex-vault/vault.key")
        #expect(config.issuer == "https://grantex.dev")
        #expect(config.leewaySeconds == 30)
        #expect(config.maxLineBytes == 65_536)
        #expect(config.idleTimeoutSeconds == 60)
        #expect(config.jwksPath == nil && config.audience == nil && config.developerIds.isEmpty)
    }

    @Test("systemd's directories are used when set")
    func systemdEnvironment() throws {
        let config = try DaemonConfiguration.resolve(
            flags: DaemonFlags(),
            environment: ["RUNTIME_DIRECTORY": "/run/gv", "STATE_DIRECTORY": "/var/lib/gv", "CREDENTIALS_DIRECTORY": "/run/credentials/x"],
            workingDirectory: "/w")
        #expect(config.socketPath == "/run/gv/vaultd.sock")
        #expect(config.stateDirectory == "/var/lib/gv")
        #expect(config.keyFile == "/run/credentials/x/vault.key")
    }

    @Test("--dev keeps everything under ./.grantex-vault")
    func dev() throws {
        var flags = DaemonFlags()
        flags.dev = true
        let config = try DaemonConfiguration.resolve(flags: flags, environment: ["STATE_DIRECTORY": "/x"], workingDirectory: "/w")
        #expect(config.socketPath == "/w/.grantex-vault/vaultd.sock")
        #expect(config.stateDirectory == "/w/.grantex-vault/state")
        #expect(config.keyFile == "/w/.grantex-vault/vault.key")
    }

    @Test("flags win over the config file, which wins over the defaults")
    func precedence() throws {
        let path = NSTemporaryDirectory() + "gxv-config-\(getpid()).conf"
        defer { unlink(path) }
        try """
        # comment
        socket = /from/file.sock
        issuer = "https://issuer.example"
        developer-id = dev_a
        developer-id = dev_b
        admin-uid = 1000
        leeway = 5
        """.write(toFile: path, atomically: true, encoding: .utf8)
        var flags = DaemonFlags()
        flags.config = path
        flags.socket = "/from/flag.sock"
        let config = try DaemonConfiguration.resolve(flags: flags, environment: [:], workingDirectory: "/w")
        #expect(config.socketPath == "/from/flag.sock")
        #expect(config.issuer == "https://issuer.example")
        #expect(config.developerIds == ["dev_a", "dev_b"])
        #expect(config.adminUids == [1000])
        #expect(config.leewaySeconds == 5)
        flags.developerIds = ["dev_flag"]
        #expect(try DaemonConfiguration.resolve(flags: flags, environment: [:], workingDirectory: "/w").developerIds == ["dev_flag"])
    }

    @Test("bad values are refused with a message naming the setting")
    func badValues() throws {
        func message(_ edit: (inout DaemonFlags) -> Void) -> String? {
            var flags = DaemonFlags()
            edit(&flags)
            do {
                _ = try DaemonConfiguration.resolve(flags: flags, environment: [:], workingDirectory: "/w")
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message { $0.socketMode = "0999" }?.contains("--socket-mode") == true)
        #expect(message { $0.leeway = "-1" }?.contains("--leeway") == true)
        #expect(message { $0.maxLineBytes = "abc" }?.contains("--max-line-bytes") == true)
        #expect(message { $0.idleTimeout = "0" }?.contains("--idle-timeout") == true)
        #expect(message { $0.adminUids = ["root"] }?.contains("--admin-uid") == true)
        #expect(message { $0.logFormat = "xml" }?.contains("--log-format") == true)
        #expect(message { $0.config = "/nonexistent.conf" }?.contains("/nonexistent.conf") == true)
    }

    @Test("an unknown setting in the config file names the file and line")
    func unknownSetting() throws {
        let path = NSTemporaryDirectory() + "gxv-config-bad-\(getpid()).conf"
        defer { unlink(path) }
        try "socket = /x\nsokcet = /y\n".write(toFile: path, atomically: true, encoding: .utf8)
        var flags = DaemonFlags()
        flags.config = path
        #expect {
            _ = try DaemonConfiguration.resolve(flags: flags, environment: [:], workingDirectory: "/w")
        } throws: { error in
            let message = (error as? ConfigurationError)?.message ?? ""
            return message.contains(path) && message.contains("line 2") && message.contains("sokcet")
        }
    }
}

@Suite("Shipped example config")
struct ExampleConfigTests {
    @Test("config/vaultd.conf.example is accepted by the daemon's parser and resolves")
    func exampleParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/vaultd.conf.example").path
        let settings = try DaemonConfiguration.parseConfigFile(path: path)
        #expect(settings["issuer"] == ["https://grantex.dev"])
        #expect(settings["log-format"] == ["json"])
        var flags = DaemonFlags()
        flags.config = path
        let config = try DaemonConfiguration.resolve(flags: flags, environment: [:], workingDirectory: "/")
        #expect(config.jwksPath == "/etc/grantex-vault/jwks.json")
        #expect(config.logFormat == .json)
    }
}
