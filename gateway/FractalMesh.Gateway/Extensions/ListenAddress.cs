using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace FractalMesh.Gateway.Extensions;

/// <summary>
/// One of the gateway's listening addresses, http://HOST:PORT or https://HOST:PORT (TLS with <c>Gateway:CertificatePath</c>),
/// where HOST is localhost, an IP address, or * / + for all.
/// </summary>
public sealed record ListenAddress(string Host, int Port, bool Tls = false)
{
    /// <summary>Parses an address, or returns null when it is not http or https with an explicit port.</summary>
    public static ListenAddress? Parse(string url)
    {
        try
        {
            var address = BindingAddress.Parse(url);
            if (address.Scheme is not ("http" or "https") || address.Port <= 0 || address.IsUnixPipe || address.PathBase.Length > 0) return null;
            return address.Host is "localhost" or "*" or "+" || IPAddress.TryParse(address.Host, out _)
                ? new ListenAddress(address.Host, address.Port, address.Scheme == "https") : null;
        }
        catch (FormatException) { return null; }
    }

    /// <summary>Adds this address to Kestrel with the given protocols, over TLS with <paramref name="certificate"/> when it is https.</summary>
    public void Listen(KestrelServerOptions kestrel, HttpProtocols protocols, X509Certificate2? certificate)
    {
        void Configure(ListenOptions listen)
        {
            listen.Protocols = protocols;
            if (Tls) listen.UseHttps(certificate ?? throw new InvalidOperationException($"https://{Host}:{Port} needs Gateway:CertificatePath"));
        }
        if (Host == "localhost") kestrel.ListenLocalhost(Port, Configure);
        else if (Host is "*" or "+") kestrel.ListenAnyIP(Port, Configure);
        else kestrel.Listen(IPAddress.Parse(Host), Port, Configure);
    }
}
