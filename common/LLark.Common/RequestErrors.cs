namespace LLark.Common;

/// <summary>A request the caller got wrong; <see cref="Field"/> names the setting or proto field (INVALID_ARGUMENT).</summary>
public sealed class InvalidRequestException(string field, string message) : ArgumentException(message)
{
    public string Field { get; } = field;
}

/// <summary>A queue is full; the caller should try again after <see cref="RetryAfter"/> (RESOURCE_EXHAUSTED with a pushback).</summary>
public sealed class QueueFullException(string message, TimeSpan retryAfter) : Exception(message)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
