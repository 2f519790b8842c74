using StackExchange.Redis;

namespace FractalMesh.Jobs;

/// <summary>
/// How to reach Redis (docs/ARCHITECTURE.md, State in Redis): the connection string, an ACL user and its password, and TLS.
/// User, password and TLS set here override the connection string's own <c>user=</c>, <c>password=</c> and <c>ssl=</c>.
/// </summary>
/// <param name="Connection">A StackExchange.Redis connection string, e.g. <c>redis:6379</c>.</param>
/// <param name="User">The ACL user (Redis 6+); null: the connection string's, or <c>default</c>.</param>
/// <param name="Password">The user's password (or <c>requirepass</c>); null: the connection string's, or none.</param>
/// <param name="Tls">Connect with TLS.</param>
/// <param name="TlsCaFile">A PEM file of the CA that signed the server's certificate, trusted in place of the system's CAs; null: the system's.</param>
/// <param name="TlsClientCertFile">A PEM client certificate for servers that require one (<c>tls-auth-clients yes</c>); needs <paramref name="TlsClientKeyFile"/>.</param>
/// <param name="TlsClientKeyFile">The PEM private key of <paramref name="TlsClientCertFile"/>.</param>
/// <param name="Section">The configuration section the settings come from, named in error messages (e.g. <c>Gateway</c>).</param>
public sealed record RedisConnectionSettings(
    string Connection, string? User = null, string? Password = null, bool Tls = false,
    string? TlsCaFile = null, string? TlsClientCertFile = null, string? TlsClientKeyFile = null, string Section = "Redis")
{
    /// <summary>
    /// The multiplexer's configuration: AbortOnConnectFail off (the process starts and serves while Redis is away) and
    /// commands that fail fast instead of queuing, so generation never waits on a missing Redis.
    /// </summary>
    public ConfigurationOptions ToConfiguration()
    {
        var config = ConfigurationOptions.Parse(Connection);
        if (!string.IsNullOrEmpty(User)) config.User = User;
        if (!string.IsNullOrEmpty(Password)) config.Password = Password;
        if (Tls) config.Ssl = true;
        if (!string.IsNullOrEmpty(TlsCaFile)) config.TrustIssuer(TlsCaFile);
        if (!string.IsNullOrEmpty(TlsClientCertFile)) config.SetUserPemCertificate(TlsClientCertFile, TlsClientKeyFile);
        config.AbortOnConnectFail = false;
        config.BacklogPolicy = BacklogPolicy.FailFast;
        config.ReconnectRetryPolicy = new ExponentialRetry(250, 5000);
        return config;
    }

    /// <summary>What is wrong with the settings themselves (files missing, a key without its certificate), as messages naming the setting.</summary>
    public IEnumerable<string> Problems()
    {
        if (!string.IsNullOrEmpty(TlsClientCertFile) != !string.IsNullOrEmpty(TlsClientKeyFile))
            yield return $"{Section}:RedisTlsClientCertFile and {Section}:RedisTlsClientKeyFile go together";
        foreach (var (name, path) in new[] { ("RedisTlsCaFile", TlsCaFile), ("RedisTlsClientCertFile", TlsClientCertFile), ("RedisTlsClientKeyFile", TlsClientKeyFile) })
            if (!string.IsNullOrEmpty(path) && !File.Exists(path)) yield return $"{Section}:{name}: no file at '{path}'";
        if ((!string.IsNullOrEmpty(TlsCaFile) || !string.IsNullOrEmpty(TlsClientCertFile)) && !Tls && !ConfigurationOptions.Parse(Connection).Ssl)
            yield return $"{Section}:RedisTls must be true when a TLS certificate file is set";
    }
}

/// <summary>The Redis server refused the configured credentials: a configuration error, reported at start.</summary>
public sealed class RedisCredentialsException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Opens the one shared multiplexer of a process.</summary>
public static class RedisConnection
{
    /// <summary>
    /// Connects (waiting up to the connect timeout). A server that is away is no error: the multiplexer reconnects in the
    /// background and the caller degrades. A server that refuses the credentials is: retrying cannot fix it, so this throws
    /// <see cref="RedisCredentialsException"/> naming the settings to check, instead of leaving the process degraded for good.
    /// </summary>
    public static ConnectionMultiplexer Connect(RedisConnectionSettings settings, string clientName)
    {
        var config = settings.ToConfiguration();
        config.ClientName ??= clientName;
        Exception? refused = null;
        var log = new StringWriter();
        var multiplexer = ConnectionMultiplexer.Connect(config, log);
        if (!multiplexer.IsConnected)
        {
            string text = log.ToString();
            if (text.Contains("WRONGPASS", StringComparison.Ordinal) || text.Contains("NOAUTH", StringComparison.Ordinal)
                || text.Contains("AuthenticationFailure", StringComparison.Ordinal) || text.Contains("NOPERM", StringComparison.Ordinal))
                refused = new InvalidOperationException(text.Split('\n').FirstOrDefault(l => l.Contains("WRONGPASS") || l.Contains("NOAUTH") || l.Contains("Authentication"))?.Trim());
        }
        if (refused is null) return multiplexer;
        multiplexer.Dispose();
        string user = string.IsNullOrEmpty(config.User) ? "default" : config.User;
        throw new RedisCredentialsException(
            $"Redis at {string.Join(",", config.EndPoints)} refused user '{user}' and its password: check {settings.Section}:RedisUser and " +
            $"{settings.Section}:RedisPassword (or user=/password= in {settings.Section}:Redis)", refused);
    }
}
