using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Security;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;key&gt;</c> against <see cref="AuthOptions.ApiKeys"/>. Keys are compared as
/// SHA-256 digests in constant time, so neither the configured keys' contents nor a match's position leak through timing.
/// No header: no result (the authorization policy then challenges with 401); a header with an unknown key: failure (401).
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions, ILoggerFactory logger, UrlEncoder encoder, IOptions<AuthOptions> auth)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    readonly (byte[] Digest, ApiKeyEntry Entry)[] keys = auth.Value.ApiKeys
        .Select(k => (k.KeySha256 is { Length: > 0 } hex ? Convert.FromHexString(hex) : SHA256.HashData(Encoding.UTF8.GetBytes(k.Key!)), k))
        .ToArray();

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header)) return Task.FromResult(AuthenticateResult.NoResult());
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return Task.FromResult(AuthenticateResult.Fail("the Authorization header is not 'Bearer <API key>'"));
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim()));
        ApiKeyEntry? match = null;
        foreach (var (known, entry) in keys)
            if (CryptographicOperations.FixedTimeEquals(known, digest)) match = entry;
        if (match is null) return Task.FromResult(AuthenticateResult.Fail("unknown API key"));
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, match.Name), new Claim(ClaimTypes.Role, match.Role)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        // gRPC clients read HTTP 401 as UNAUTHENTICATED; REST callers and the page read the status and this header.
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer realm=\"fractalmesh\"";
        return Task.CompletedTask;
    }
}
