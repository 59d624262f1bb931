// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: executables -> VaultServer / GrantexVault -> VaultProtocol / VaultCore -> CSodium.
// VaultCore never imports NIO or ArgumentParser; VaultProtocol depends on nothing but Foundation.
let package = Package(
    name: "grantex-vault",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "grantex-vaultd", targets: ["grantex-vaultd"]),
        .executable(name: "grantex-vault", targets: ["grantex-vault"]),
        .library(name: "GrantexVault", targets: ["GrantexVault"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(
            name: "CVaultSystem"
        ),
        .target(
            name: "VaultProtocol"
        ),
        .target(
            name: "VaultCore",
            dependencies: [
                "CSodium",
                "CVaultSystem",
                "VaultProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "VaultServer",
            dependencies: [
                "VaultCore",
                "VaultProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "GrantexVault",
            dependencies: [
                "VaultProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "grantex-vaultd",
            dependencies: [
                "CVaultSystem",
                "VaultServer",
                "VaultCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "grantex-vault-bench",
            dependencies: [
                "VaultCore",
                "VaultProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "grantex-vault",
            dependencies: [
                "GrantexVault",
                "VaultCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "VaultProtocolTests",
            dependencies: ["VaultProtocol"]
        ),
        .testTarget(
            name: "VaultCoreTests",
            dependencies: [
                "VaultCore", "CSodium",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "VaultServerTests",
            dependencies: [
                "VaultServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "GrantexVault", "VaultProtocol", "grantex-vaultd", "grantex-vault", "grantex-vault-bench",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
