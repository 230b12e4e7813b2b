namespace LLark.Cli.Commands;

/// <summary>Exit codes shared by every verb, so scripts can tell a bad request from a broken model.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>An unexpected failure (a bug).</summary>
    public const int Failure = 1;

    /// <summary>The command line or a request setting was wrong.</summary>
    public const int Usage = 2;

    /// <summary>A model, tokenizer or checkpoint could not be read or does not fit.</summary>
    public const int BadModel = 3;

    /// <summary>An input clip could not be decoded (corrupt, truncated, unsupported, over a limit).</summary>
    public const int BadInput = 4;

    /// <summary>The server or one of its dependencies is down, busy, or past the deadline.</summary>
    public const int Unavailable = 5;

    /// <summary>The server refused the API key.</summary>
    public const int Unauthorized = 6;

    /// <summary>Interrupted (Ctrl-C).</summary>
    public const int Cancelled = 130;
}
