using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace FractalMesh.Gateway.Extensions;

/// <summary>One of the gateway's listening addresses, http://HOST:PORT, where HOST is localhost, an IP address, or * / + for all.</summary>
public sealed record ListenAddress(string Host, int Port)
{
    /// <summary>Parses an address, or returns null when it is not plain http with an explicit port.</summary>
    public static ListenAddress? Parse(string url)
    {
        try
        {
            var address = BindingAddress.Parse(url);
            if (address.Scheme != "http" || address.Port <= 0 || address.IsUnixPipe || address.PathBase.Length > 0) return null;
            return address.Host is "localhost" or "*" or "+" || IPAddress.TryParse(address.Host, out _) ? new ListenAddress(address.Host, address.Port) : null;
        }
        catch (FormatException) { return null; }
    }

    /// <summary>Adds this address to Kestrel with the given protocols.</summary>
    public void Listen(KestrelServerOptions kestrel, HttpProtocols protocols)
    {
        void Configure(ListenOptions listen) => listen.Protocols = protocols;
        if (Host == "localhost") kestrel.ListenLocalhost(Port, Configure);
        else if (Host is "*" or "+") kestrel.ListenAnyIP(Port, Configure);
        else kestrel.Listen(IPAddress.Parse(Host), Port, Configure);
    }
}
