namespace LLark.Encoder.Engine.Audio;

/// <summary>Why a clip could not be turned into samples.</summary>
public enum AudioDecodeError
{
    /// <summary>No bytes, or a container with no audio in it.</summary>
    Empty,

    /// <summary>The bytes end before the container says the audio does.</summary>
    Truncated,

    /// <summary>The container or the coded audio is malformed.</summary>
    Corrupt,

    /// <summary>A format (or a variant of one) this decoder does not read; the message names it.</summary>
    Unsupported,

    /// <summary>More bytes than <see cref="AudioLimits.MaxBytes"/>.</summary>
    TooLarge,

    /// <summary>Longer than <see cref="AudioLimits.MaxDuration"/>.</summary>
    TooLong,
}

/// <summary>A clip that cannot be decoded; <see cref="Reason"/> says why, the message says what was found.</summary>
public sealed class AudioDecodeException : Exception
{
    public AudioDecodeException(AudioDecodeError reason, string message) : base(message) => Reason = reason;

    public AudioDecodeException(AudioDecodeError reason, string message, Exception inner) : base(message, inner) => Reason = reason;

    public AudioDecodeError Reason { get; }
}

/// <summary>Bounds on the work one clip may cause.</summary>
public sealed record AudioLimits
{
    /// <summary>Largest encoded clip accepted, in bytes; 256 MiB by default.</summary>
    public long MaxBytes { get; init; } = 256L << 20;

    /// <summary>Longest clip decoded; 20 minutes by default. Decoding stops as soon as it is passed.</summary>
    public TimeSpan MaxDuration { get; init; } = TimeSpan.FromMinutes(20);

    /// <summary>Channels accepted; 32 by default.</summary>
    public int MaxChannels { get; init; } = 32;

    /// <summary>Sample rates accepted, in Hz; 1 kHz to 384 kHz by default.</summary>
    public int MinSampleRate { get; init; } = 1000;

    public int MaxSampleRate { get; init; } = 384_000;
}

/// <summary>Decoded audio: <see cref="Channels"/> arrays of equal length at <see cref="SampleRate"/> Hz.</summary>
public sealed record DecodedAudio(float[][] Channels, int SampleRate, AudioFormat Format)
{
    public int Frames => Channels.Length == 0 ? 0 : Channels[0].Length;
}

/// <summary>The container formats the decoder tells apart by their first bytes.</summary>
public enum AudioFormat
{
    Wav,
    Mp3,
    OggVorbis,
}
