using Grpc.Health.V1;
using Grpc.HealthCheck;

namespace LLark.ServiceDefaults;

/// <summary>
/// The standard gRPC health service's answers: NOT_SERVING for the whole server and for each named service until
/// the host says its model is loaded. Probes and load balancers read it; <c>/healthz</c> mirrors it over HTTP/1.1.
/// </summary>
public sealed class ServingStatus
{
    private readonly HealthServiceImpl health = new();
    private readonly List<string> services = [""];

    public ServingStatus() => health.SetStatus("", HealthCheckResponse.Types.ServingStatus.NotServing);

    internal HealthServiceImpl Service => health;

    public bool IsServing { get; private set; }

    /// <summary>Registers a fully-qualified gRPC service name (e.g. <c>llark.language.v1.LanguageService</c>), NOT_SERVING for now.</summary>
    public void Add(string serviceName)
    {
        lock (services)
        {
            services.Add(serviceName);
            health.SetStatus(serviceName, IsServing ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing);
        }
    }

    public void Set(bool serving)
    {
        lock (services)
        {
            IsServing = serving;
            var status = serving ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing;
            foreach (string name in services) health.SetStatus(name, status);
        }
    }
}
