/// The version reported by `system.health`, `system.status` and `--version`.
public enum GrantexVaultVersion {
    public static let current = "0.1.0"
}
