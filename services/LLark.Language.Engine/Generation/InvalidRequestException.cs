namespace LLark.Language.Engine.Generation;

/// <summary>A request the caller got wrong; <see cref="Field"/> names the setting (a service maps it to INVALID_ARGUMENT).</summary>
public sealed class InvalidRequestException(string field, string message) : ArgumentException(message)
{
    public string Field { get; } = field;
}
