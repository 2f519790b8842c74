using FractalMesh.Gateway.Security;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace FractalMesh.Gateway.Extensions;

/// <summary>
/// Authentication of the public API (docs/ARCHITECTURE.md, Security): the <c>Auth</c> section, the API-key scheme, and a
/// fallback policy that, with <c>Auth:Enabled</c>, makes every endpoint not marked anonymous require an authenticated
/// caller. gRPC calls, the REST bridge and the job calls all go through it; health and the page's files are anonymous.
/// </summary>
public static class AuthExtensions
{
    public static WebApplicationBuilder AddGatewayAuth(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthOptions>()
            .Bind(builder.Configuration.GetSection(AuthOptions.Section))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddOptions<AuthorizationOptions>().Configure<IOptions<AuthOptions>>((authorization, auth) =>
        {
            if (auth.Value.Enabled)
                authorization.FallbackPolicy = new AuthorizationPolicyBuilder(ApiKeyAuthenticationHandler.SchemeName).RequireAuthenticatedUser().Build();
        });
        return builder;
    }

    /// <summary>Authentication, then authorization, ahead of every endpoint.</summary>
    public static WebApplication UseGatewayAuth(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        return app;
    }
}
