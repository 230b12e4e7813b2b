using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace LLark.ServiceDefaults;

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "{Method} refused: {Status} {Detail}")]
    public static partial void Refused(ILogger logger, string method, StatusCode status, string detail);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "{Method} failed")]
    public static partial void Failed(ILogger logger, Exception error, string method);
}
