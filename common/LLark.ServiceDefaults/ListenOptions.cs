using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography.X509Certificates;

namespace LLark.ServiceDefaults;

/// <summary>Where a host listens (section <c>LLark:Listen</c>; environment <c>LLARK__LISTEN__GRPCPORT</c>, ...).</summary>
public sealed class ListenOptions : IValidatableObject
{
    public const string Section = "LLark:Listen";

    /// <summary>
    /// Address to bind; default 127.0.0.1, so that a service started by hand is reachable from this machine only. A pod
    /// sets 0.0.0.0, and a model service bound so must have an internal token (<see cref="InternalTokenOptions"/>).
    /// </summary>
    [Required] public string Address { get; set; } = "127.0.0.1";

    /// <summary>Cleartext HTTP/2 port for gRPC (health and reflection included); 0 picks a free port.</summary>
    [Range(0, 65535)] public int GrpcPort { get; set; } = 5001;

    /// <summary>HTTP/1.1 port for <c>/metrics</c> (Prometheus) and <c>/healthz</c>; 0 picks a free port, -1 disables it.</summary>
    [Range(-1, 65535)] public int HttpPort { get; set; } = 9464;

    /// <summary>gRPC server reflection on the gRPC port; default off, as it tells anyone who reaches the port every method.</summary>
    public bool Reflection { get; set; }

    /// <summary>
    /// TLS on both ports (<c>LLark:Listen:Certificate:Path</c>, ...). Unset (default): cleartext, as the services inside
    /// the cluster talk; the gateway sets it when it faces the outside.
    /// </summary>
    public CertificateOptions? Certificate { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!System.Net.IPAddress.TryParse(Address, out _))
            yield return new ValidationResult($"Address '{Address}' is not an IP address", [nameof(Address)]);
        if (Certificate is not { Path.Length: > 0 } certificate) yield break;
        if (!File.Exists(certificate.Path))
            yield return new ValidationResult($"Certificate:Path '{certificate.Path}' does not exist", [nameof(Certificate)]);
        if (certificate.KeyPath is { Length: > 0 } key && !File.Exists(key))
            yield return new ValidationResult($"Certificate:KeyPath '{key}' does not exist", [nameof(Certificate)]);
    }
}

/// <summary>A server certificate, named the way Kestrel's own <c>Certificates</c> settings name it.</summary>
public sealed class CertificateOptions
{
    /// <summary>A PEM certificate (chain), or a PKCS#12 file when it ends in .pfx or .p12. Required to turn TLS on.</summary>
    public string Path { get; set; } = "";

    /// <summary>The PEM private key; unset when it is in the <see cref="Path"/> file or the file is PKCS#12.</summary>
    public string? KeyPath { get; set; }

    /// <summary>Password of a PKCS#12 file or of an encrypted PEM key; unset when there is none.</summary>
    public string? Password { get; set; }

    public X509Certificate2 Load()
    {
        string extension = System.IO.Path.GetExtension(Path).ToLowerInvariant();
        if (extension is ".pfx" or ".p12") return X509CertificateLoader.LoadPkcs12FromFile(Path, Password);
        return Password is { Length: > 0 } password
            ? X509Certificate2.CreateFromEncryptedPemFile(Path, password, KeyPath)
            : X509Certificate2.CreateFromPemFile(Path, KeyPath);
    }
}
