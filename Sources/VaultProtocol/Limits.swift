/// Every size and count limit of the wire protocol, in one place (PROTOCOL.md, "Data model").
public enum Limits {
    /// Default longest request line, in bytes, not counting the line terminator.
    public static let defaultMaxLineBytes = 65_536
    /// Default idle timeout of a connection, in seconds.
    public static let defaultIdleTimeoutSeconds = 60
    /// Requests one connection may have in flight before the daemon stops reading from it.
    public static let maxPipelinedRequests = 256
    /// Elements of one batch.
    public static let maxBatchElements = 1_000
    /// Nesting depth of a request document.
    public static let maxJSONDepth = 64

    /// `principalId` length in Unicode scalars.
    public static let principalIdLength = 1...256
    /// `service` length in characters (ASCII only, by its pattern).
    public static let serviceLength = 1...64
    /// `accessToken` / `refreshToken` size in UTF-8 bytes.
    public static let tokenBytes = 1...16_384
    /// `metadata` size once serialised compactly, in bytes.
    public static let maxMetadataBytes = 16_384
    /// `credentialType` length in Unicode scalars.
    public static let credentialTypeLength = 1...64
    /// `vault.list` page size.
    public static let listLimit = 1...1_000
    /// `vault.list` page size when none is given.
    public static let defaultListLimit = 100
    /// Length of a `jti` or grant id given to `grants.revoke`.
    public static let revocationIdLength = 1...256
    /// The credential type stored when none is given.
    public static let defaultCredentialType = "oauth2"
}
