import ArgumentParser
import Foundation
import GrantexVault
import VaultCore

/// `grantex-vault`: the operator's CLI. Exit status: 0 success, 1 the daemon answered an error,
/// 2 usage error, 3 the daemon cannot be reached.
@main
struct GrantexVaultCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grantex-vault",
        abstract: "Operate a grantex-vaultd credential vault.",
        version: GrantexVaultVersion.current,
        subcommands: [
            Keygen.self, Store.self, List.self, Get.self, Delete.self, Exchange.self, Revoke.self, Revoked.self, Audit.self,
            Status.self, Health.self, Metrics.self, Dev.self,
        ])

    static func main() async {
        let arguments = hoistGlobalOptions(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch let failure as CLIFailure {
            failure.report()
            Foundation.exit(failure.status)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            var message = fullMessage(for: error)
            if message.hasPrefix("Error: ") { message.removeFirst(7) }
            FileHandle.standardError.write(Data("grantex-vault: error: \(message)\n".utf8))
            Foundation.exit(CLIFailure.usage)
        }
    }

    /// Lets the global options stand before the subcommand (`grantex-vault --json list`) as well as
    /// after it: argument-parser only accepts a subcommand's options after its name.
    static func hoistGlobalOptions(_ arguments: [String]) -> [String] {
        var hoisted: [String] = []
        var rest: [String] = []
        var index = 0
        var seenSubcommand = false
        while index < arguments.count {
            let argument = arguments[index]
            if !seenSubcommand {
                if argument == "--json" {
                    hoisted.append(argument)
                    index += 1
                    continue
                }
                if argument == "--socket", index + 1 < arguments.count {
                    hoisted += [argument, arguments[index + 1]]
                    index += 2
                    continue
                }
                if argument.hasPrefix("--socket=") {
                    hoisted.append(argument)
                    index += 1
                    continue
                }
                if !argument.hasPrefix("-") { seenSubcommand = true }
            }
            rest.append(argument)
            index += 1
        }
        guard !hoisted.isEmpty, seenSubcommand else { return arguments }
        // Subcommands may have their own subcommands (`dev token`): put the options at the end.
        return rest + hoisted
    }
}

/// Options every subcommand that talks to the daemon accepts.
struct GlobalOptions: ParsableArguments {
    @Option(help: "The daemon's socket (default: $GRANTEX_VAULT_SOCKET, else $RUNTIME_DIRECTORY/vaultd.sock, else /run/grantex-vault/vaultd.sock).")
    var socket: String?

    @Flag(help: "Print the JSON-RPC result object as JSON.")
    var json = false

    /// The socket to use: the flag, the environment, the daemon's default, or a dev-mode socket in
    /// the working directory when the default does not exist.
    var socketPath: String {
        if let socket { return socket }
        let environment = ProcessInfo.processInfo.environment
        if let fromEnvironment = environment["GRANTEX_VAULT_SOCKET"], !fromEnvironment.isEmpty { return fromEnvironment }
        let standard =
            environment["RUNTIME_DIRECTORY"].flatMap { $0.split(separator: ":").first.map { $0 + "/vaultd.sock" } }
            ?? GrantexVaultClient.defaultSocketPath
        let dev = FileManager.default.currentDirectoryPath + "/.grantex-vault/vaultd.sock"
        if !FileManager.default.fileExists(atPath: standard), FileManager.default.fileExists(atPath: dev) { return dev }
        return standard
    }

    /// Runs `body` with a client, turning failures into the CLI's exit statuses and messages.
    func withClient<T>(_ body: (GrantexVaultClient) async throws -> T) async throws -> T {
        let client = GrantexVaultClient(socketPath: socketPath)
        do {
            let value = try await body(client)
            await client.close()
            return value
        } catch let error as VaultError {
            await client.close()
            throw CLIFailure(status: CLIFailure.daemonError, message: "\(error.message) (\(error.code.name))")
        } catch let error as VaultConnectionError {
            await client.close()
            switch error {
            case .cannotConnect:
                throw CLIFailure(
                    status: CLIFailure.unreachable, message: error.description,
                    hint: "start the daemon (`systemctl start grantex-vaultd`, or `grantex-vaultd --dev` for a local trial), or point --socket / GRANTEX_VAULT_SOCKET at its socket")
            default:
                throw CLIFailure(status: CLIFailure.unreachable, message: error.description)
            }
        }
    }

    /// Prints a result: as compact JSON with `--json`, else with `human`.
    func emit(_ value: JSONValue, human: () -> String) {
        if json {
            print(value.jsonString)
        } else {
            print(human())
        }
    }
}

/// A failure with the exit status it maps to. Messages never contain secrets.
struct CLIFailure: Error {
    static let daemonError: Int32 = 1
    static let usage: Int32 = 2
    static let unreachable: Int32 = 3

    var status: Int32
    var message: String
    var hint: String? = nil

    func report() {
        var text = "grantex-vault: error: \(message)\n"
        if let hint { text += "grantex-vault: hint: \(hint)\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func usageError(_ message: String, hint: String? = nil) -> CLIFailure {
        CLIFailure(status: usage, message: message, hint: hint)
    }
}

/// Reading secrets without putting them in argv.
enum SecretInput {
    /// The contents of `path` with one trailing newline removed.
    static func file(_ path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIFailure.usageError("cannot read the \(what) file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIFailure.usageError("the \(what) file \(path) is not UTF-8 text")
        }
        return stripOneNewline(text)
    }

    /// All of standard input with one trailing newline removed.
    static func standardInput(what: String) throws -> String {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIFailure.usageError("the \(what) on standard input is not UTF-8 text")
        }
        return stripOneNewline(text)
    }

    static func stripOneNewline(_ text: String) -> String {
        if text.hasSuffix("\r\n") { return String(text.dropLast(2)) }
        if text.hasSuffix("\n") { return String(text.dropLast()) }
        return text
    }
}
