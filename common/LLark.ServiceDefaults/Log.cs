using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace LLark.ServiceDefaults;

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "{Method} refused: {Status} {Detail}")]
    public static partial void Refused(ILogger logger, string method, StatusCode status, string detail);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "{Method} failed")]
    public static partial void Failed(ILogger logger, Exception error, string method);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information,
        Message = "Idle after {AllocatedMiB:F0} MiB allocated: the heap was compacted and its free memory returned ({BeforeMiB:F0} -> {AfterMiB:F0} MiB resident)")]
    public static partial void IdleTrim(ILogger logger, double allocatedMiB, double beforeMiB, double afterMiB);
}
