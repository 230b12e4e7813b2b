using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using LLark.Checkpoints;

namespace LLark.Tests.TestSupport;

internal static class ProcessSetup
{
    /// <summary>
    /// The test host runs inference tests before training ones in one process, and MKL reads its reproducibility mode
    /// at its first call, so the trainers' own request would come too late here: make it before any test runs.
    /// </summary>
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255", Justification = "The test assembly is the process's entry point for the test host.")]
    internal static void RequestReproducibleMath() => LibTorchEnvironment.RequestReproducibleMath();
}
