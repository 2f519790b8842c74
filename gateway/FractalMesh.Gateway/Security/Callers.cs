using System.Security.Claims;
using FractalMesh.Jobs;

namespace FractalMesh.Gateway.Security;

/// <summary>
/// Who a call comes from, as job ownership sees it: the API key's principal name, or null when authentication is off
/// (every caller is the same anonymous one, and jobs are shared as before keys existed).
/// </summary>
public static class Callers
{
    /// <summary>The principal that owns what this call submits, or null without authentication.</summary>
    public static string? Principal(ClaimsPrincipal user) => user.Identity is { IsAuthenticated: true, Name: { } name } ? name : null;

    /// <summary>
    /// Whether <paramref name="user"/> may see and cancel <paramref name="job"/>: its submitter, or an admin. A job submitted
    /// without authentication (no submitter) is visible only to unauthenticated callers and admins.
    /// </summary>
    public static bool MaySee(ClaimsPrincipal user, JobRecord job) =>
        user.IsInRole(ApiKeyEntry.AdminRole) || string.Equals(job.Submitter, Principal(user), StringComparison.Ordinal);
}
