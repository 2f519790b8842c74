using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FractalMesh.Testing;

/// <summary>
/// A self-signed certificate for 127.0.0.1 and localhost, made in the test and written to a temporary PFX (and PEM, for
/// a CA file), plus an HTTP handler that trusts it and nothing else. Deleted with the object.
/// </summary>
public sealed class TlsCertificate : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("fractalmesh-tls-").FullName;

    public TlsCertificate(string subject = "CN=fractalmesh-test")
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        PfxPath = Path.Combine(folder, "server.pfx");
        File.WriteAllBytes(PfxPath, created.Export(X509ContentType.Pfx, Password));
        PemPath = Path.Combine(folder, "server.crt");
        File.WriteAllText(PemPath, created.ExportCertificatePem());
        Certificate = X509CertificateLoader.LoadCertificate(created.RawData);
    }

    public string Password { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
    /// <summary>The certificate and its private key, PKCS#12.</summary>
    public string PfxPath { get; }
    /// <summary>The certificate alone, PEM: what a client trusts as its CA file.</summary>
    public string PemPath { get; }
    /// <summary>The public certificate.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>An HTTP handler that trusts this certificate as its only root (host names are still checked).</summary>
    public SocketsHttpHandler TrustingHandler() => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch)) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(Certificate);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            },
        },
    };

    public void Dispose()
    {
        Certificate.Dispose();
        try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
    }
}
