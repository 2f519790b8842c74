using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;

namespace FractalMesh.Rpc;

/// <summary>
/// How a caller reaches a level securely (deploy/README.md, Security): TLS checked against a CA of the deployment's own
/// when one is given, and the shared secret as a bearer token on every call.
/// </summary>
static class LevelTls
{
    /// <summary>The channel's credentials: TLS or not, with the secret as call credentials when there is one.</summary>
    public static ChannelCredentials Credentials(bool tls, string? callSecret, GrpcChannelOptions channelOptions)
    {
        var transport = tls ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure;
        if (string.IsNullOrEmpty(callSecret)) return transport;
        // Inside a cluster without TLS the secret travels in cleartext on the pod network; deploy/README.md says when that is acceptable.
        if (!tls) channelOptions.UnsafeUseInsecureChannelCallCredentials = true;
        string header = $"Bearer {callSecret}";
        return ChannelCredentials.Create(transport, CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("Authorization", header);
            return Task.CompletedTask;
        }));
    }

    /// <summary>TLS client options trusting only <paramref name="caPath"/>'s certificates as roots, or the system's when null.</summary>
    public static SslClientAuthenticationOptions ClientOptions(string? caPath)
    {
        var ssl = new SslClientAuthenticationOptions();
        if (string.IsNullOrWhiteSpace(caPath)) return ssl;
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(caPath);
        ssl.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
        {
            // With a CA of the deployment's own the chain must end at it, whatever the system's roots say; the name must match either way.
            if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable)) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
        };
        return ssl;
    }
}
