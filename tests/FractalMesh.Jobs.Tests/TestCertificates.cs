using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FractalMesh.Jobs.Tests;

/// <summary>A throwaway CA and a server certificate it signed for 127.0.0.1, as PEM files in a temporary directory.</summary>
public sealed class TestCertificates : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("fm-tls-").FullName;
    public string CaFile => Path.Combine(dir, "ca.crt");
    public string ServerCertFile => Path.Combine(dir, "server.crt");
    public string ServerKeyFile => Path.Combine(dir, "server.key");

    public TestCertificates()
    {
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest("CN=FractalMesh test CA", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

        using var serverKey = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var server = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), RandomNumberGenerator.GetBytes(8));

        File.WriteAllText(CaFile, ca.ExportCertificatePem());
        File.WriteAllText(ServerCertFile, server.ExportCertificatePem());
        File.WriteAllText(ServerKeyFile, serverKey.ExportPkcs8PrivateKeyPem());
    }

    public void Dispose()
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }
}
