using System.Buffers.Binary;
using LLark.Language.V1;

namespace LLark.Gateway;

/// <summary>
/// The step of YARP's proxy pipeline before load balancing that gives a proxied Generate call its clip's key
/// (<see cref="ClipAffinity.KeyFeature"/>): it reads the call's one request message (a gRPC frame: a compressed flag,
/// a 4-byte big-endian length, the GenerateRequest), takes the key from it, and puts the body back so that YARP
/// forwards exactly the bytes the caller sent. A compressed, malformed, cut-short or over-limit message gets no key
/// and is forwarded untouched, for the language service (or, over the route's limit, <see cref="BodyLimit"/>) to
/// refuse. It reads only the calls whose limit <see cref="BodyLimit"/> has settled: a body read first would keep
/// Kestrel's limit.
/// </summary>
public static class GenerateKeyReader
{
    public static readonly string GeneratePath = $"/{LanguageService.Descriptor.FullName}/Generate";

    private const int FrameHeaderBytes = 5;

    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        if (context.Request.Path.Equals(GeneratePath, StringComparison.Ordinal) && BodyLimit.Of(context) is { } limit
            && await ReadKeyAsync(context.Request, limit.MessageLimit, context.RequestAborted).ConfigureAwait(false) is { } key)
        {
            context.Features.Set(new ClipAffinity.KeyFeature(key));
        }
        await next().ConfigureAwait(false);
    }

    /// <summary>
    /// The key of the request's first message, or null; either way the body yields every byte the caller sent, in
    /// order. A message over <paramref name="limit"/> is not read (nor any message when there is no limit, since its
    /// size would then be the caller's to choose), so the gateway never holds more of a call than that; nor does it read
    /// into the cap, which refuses the body once YARP forwards it, as for any other call.
    /// </summary>
    internal static async Task<string?> ReadKeyAsync(HttpRequest request, long? limit, CancellationToken cancellationToken)
    {
        Stream body = request.Body;
        byte[] header = new byte[FrameHeaderBytes];
        int read = await ReadUpToAsync(body, header, cancellationToken).ConfigureAwait(false);
        if (read < FrameHeaderBytes || header[0] != 0)
        {
            request.Body = new ReplayStream(header.AsMemory(0, read), body);
            return null;
        }
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1));
        if (limit is not { } max || FrameHeaderBytes + (long)length > max || length > Array.MaxLength - FrameHeaderBytes)
        {
            request.Body = new ReplayStream(header, body);
            return null;
        }

        // Grown as the bytes arrive, not sized by the header: a caller cannot make the gateway hold more than it sent.
        long total = FrameHeaderBytes + (long)length;
        byte[] frame = new byte[Math.Min(total, 64 << 10)];
        header.CopyTo(frame, 0);
        while (read < total)
        {
            if (read == frame.Length) Array.Resize(ref frame, (int)Math.Min(2L * frame.Length, total));
            int wanted = frame.Length - read, got = await ReadUpToAsync(body, frame.AsMemory(read, wanted), cancellationToken).ConfigureAwait(false);
            read += got;
            if (got < wanted) break;
        }
        request.Body = new ReplayStream(frame.AsMemory(0, read), body);
        return read == total ? ClipAffinity.KeyOf(new ArraySegment<byte>(frame, FrameHeaderBytes, (int)length)) : null;
    }

    /// <summary>
    /// Fills <paramref name="buffer"/> or reads to the end of the body; a body that fails to read (the caller went away,
    /// a reset) stops here, and YARP meets the same failure when it reads on.
    /// </summary>
    private static async Task<int> ReadUpToAsync(Stream body, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int read = 0;
        try
        {
            while (read < buffer.Length)
            {
                int n = await body.ReadAsync(buffer[read..], cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                read += n;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
        }
        return read;
    }

    /// <summary>The bytes already read from a body, then the rest of it.</summary>
    private sealed class ReplayStream(ReadOnlyMemory<byte> consumed, Stream rest) : ForwardOnlyStream
    {
        private ReadOnlyMemory<byte> pending = consumed;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer) => pending.IsEmpty ? rest.Read(buffer) : TakePending(buffer);

        // A zero-byte read (YARP waits for data with one) is answered at once while bytes are pending: they are ready.
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            pending.IsEmpty ? rest.ReadAsync(buffer, cancellationToken) : ValueTask.FromResult(TakePending(buffer.Span));

        private int TakePending(Span<byte> buffer)
        {
            int n = Math.Min(buffer.Length, pending.Length);
            pending.Span[..n].CopyTo(buffer);
            pending = pending[n..];
            return n;
        }
    }
}
