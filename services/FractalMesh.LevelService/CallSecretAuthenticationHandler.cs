using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace FractalMesh.LevelService;

/// <summary>
/// Authenticates the level's callers (the gateway and the level above) by the shared secret <c>Level:CallSecret</c>, sent
/// as <c>Authorization: Bearer &lt;secret&gt;</c>; compared as SHA-256 digests in constant time. A call without it, or with
/// another, is challenged with HTTP 401, which gRPC clients read as UNAUTHENTICATED.
/// </summary>
public sealed class CallSecretAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions, ILoggerFactory logger, UrlEncoder encoder, IOptions<LevelOptions> level)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    public const string SchemeName = "LevelCallSecret";

    readonly byte[]? secret = string.IsNullOrEmpty(level.Value.CallSecret) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(level.Value.CallSecret));

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (secret is null || string.IsNullOrEmpty(header)) return Task.FromResult(AuthenticateResult.NoResult());
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            || !CryptographicOperations.FixedTimeEquals(secret, SHA256.HashData(Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim()))))
            return Task.FromResult(AuthenticateResult.Fail("wrong level call secret"));
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "fractalmesh-caller")], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }
}
