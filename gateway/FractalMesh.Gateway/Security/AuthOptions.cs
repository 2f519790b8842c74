using System.ComponentModel.DataAnnotations;

namespace FractalMesh.Gateway.Security;

/// <summary>
/// Who may call the public API (section <c>Auth</c>, validated at start; docs/ARCHITECTURE.md, Security). Off by default,
/// so the embedded gateway started with no configuration answers everyone; with <see cref="Enabled"/> every gRPC, REST and
/// job call needs <c>Authorization: Bearer &lt;key&gt;</c> with one of <see cref="ApiKeys"/>, and health, the page's files,
/// <c>GET /v1/model</c> and the gRPC <c>DescribeModel</c> stay open.
/// </summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string Section = "Auth";

    /// <summary>Whether calls need an API key; default false (local development).</summary>
    public bool Enabled { get; set; }

    /// <summary>The accepted keys, each naming the principal that owns its jobs; indexed (<c>Auth__ApiKeys__0__Key</c>) so a Secret can hold them.</summary>
    public List<ApiKeyEntry> ApiKeys { get; set; } = [];

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Enabled && ApiKeys.Count == 0)
            yield return new("Auth:ApiKeys is empty while Auth:Enabled is true: no caller could get in", [nameof(ApiKeys)]);
        for (int i = 0; i < ApiKeys.Count; i++)
        {
            var entry = ApiKeys[i];
            if (string.IsNullOrWhiteSpace(entry.Name))
                yield return new($"Auth:ApiKeys:{i}:Name is required (the principal that owns the key's jobs)", [nameof(ApiKeys)]);
            bool plain = !string.IsNullOrEmpty(entry.Key), hashed = !string.IsNullOrEmpty(entry.KeySha256);
            if (plain == hashed)
                yield return new($"Auth:ApiKeys:{i}: set exactly one of Key and KeySha256", [nameof(ApiKeys)]);
            if (plain && entry.Key!.Length < ApiKeyEntry.MinKeyLength)
                yield return new($"Auth:ApiKeys:{i}:Key is shorter than {ApiKeyEntry.MinKeyLength} characters", [nameof(ApiKeys)]);
            if (hashed && !(entry.KeySha256!.Length == 64 && entry.KeySha256.All(Uri.IsHexDigit)))
                yield return new($"Auth:ApiKeys:{i}:KeySha256 is not 64 hex digits (sha256sum of the key)", [nameof(ApiKeys)]);
            if (entry.Role is not (ApiKeyEntry.UserRole or ApiKeyEntry.AdminRole))
                yield return new($"Auth:ApiKeys:{i}:Role must be '{ApiKeyEntry.UserRole}' or '{ApiKeyEntry.AdminRole}', got '{entry.Role}'", [nameof(ApiKeys)]);
        }
        var names = ApiKeys.Where(k => !string.IsNullOrWhiteSpace(k.Name)).GroupBy(k => k.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (names.Count > 0)
            yield return new($"Auth:ApiKeys: principal names must be unique, repeated: {string.Join(", ", names)}", [nameof(ApiKeys)]);
    }
}

/// <summary>One API key: the principal it authenticates, its role, and the key itself or its SHA-256.</summary>
public sealed class ApiKeyEntry
{
    public const string UserRole = "user", AdminRole = "admin";
    /// <summary>Keys are random tokens, not passwords: a short one could be guessed.</summary>
    public const int MinKeyLength = 16;

    /// <summary>The principal (owner of the jobs submitted with this key).</summary>
    public string Name { get; set; } = "";
    /// <summary>The key as sent; or leave empty and set <see cref="KeySha256"/>.</summary>
    public string? Key { get; set; }
    /// <summary>Lower- or upper-case hex SHA-256 of the key, so configuration need not hold the key itself.</summary>
    public string? KeySha256 { get; set; }
    /// <summary><c>user</c> (default): its own jobs; <c>admin</c>: every job.</summary>
    public string Role { get; set; } = UserRole;
}
