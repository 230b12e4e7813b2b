using System.ComponentModel.DataAnnotations;

namespace LLark.ServiceDefaults;

/// <summary>Where a host listens (section <c>LLark:Listen</c>; environment <c>LLARK__LISTEN__GRPCPORT</c>, ...).</summary>
public sealed class ListenOptions
{
    public const string Section = "LLark:Listen";

    /// <summary>Address to bind; default 0.0.0.0 (all interfaces, as in a pod). Tests use 127.0.0.1.</summary>
    [Required] public string Address { get; set; } = "0.0.0.0";

    /// <summary>Cleartext HTTP/2 port for gRPC (health and reflection included); 0 picks a free port.</summary>
    [Range(0, 65535)] public int GrpcPort { get; set; } = 5001;

    /// <summary>HTTP/1.1 port for <c>/metrics</c> (Prometheus) and <c>/healthz</c>; 0 picks a free port, -1 disables it.</summary>
    [Range(-1, 65535)] public int HttpPort { get; set; } = 9464;
}
