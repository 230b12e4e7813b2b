using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using LLark.Language.V1;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace LLark.Gateway;

/// <summary>
/// Which language pod answers a question about a clip. Each pod's prefix cache keeps the prompt state of the clips it
/// has seen, so every question about one clip is sent to the same pod: the clip's key ranks the pods by rendezvous
/// (highest-random-weight) hashing, and the top pod with room takes it. One key and one pick for both ways in: the
/// proxied gRPC call (<see cref="GenerateKeyReader"/>, <see cref="ClipAffinityPolicy"/>) and the HTTP fronts'
/// calls (<see cref="BackendCalls"/>, through <see cref="BackendClients"/>).
/// </summary>
public static class ClipAffinity
{
    /// <summary>The load-balancing policy's name in a cluster's configuration.</summary>
    public const string PolicyName = "ClipAffinity";

    /// <summary>
    /// How a front's call tells <see cref="BackendClients"/> its key: binary metadata, because an embedding id is the
    /// caller's string and need not be a valid header value. Taken off before the call leaves the gateway.
    /// </summary>
    public const string Header = "x-llark-affinity-bin";

    /// <summary>The key of a proxied call, set before load balancing.</summary>
    public sealed record KeyFeature(string Key);

    /// <summary>
    /// The clip a serialized <see cref="GenerateRequest"/> asks about, read field by field without parsing the message
    /// (an inline clip can be 64 MiB): <c>embedding_id</c> is the key itself; inline <c>frames</c> or
    /// <c>audio_bytes</c> are known by a SHA-256 of the field's bytes, after their kind, so the two never meet. Null
    /// when there is no clip, or the message is malformed (the language service will say what is wrong with it).
    /// </summary>
    public static string? KeyOf(ArraySegment<byte> message)
    {
        string? key = null;
        try
        {
            var input = new CodedInputStream(message.Array!, message.Offset, message.Count);
            // Positions in the array, whatever origin the stream counts from.
            long origin = input.Position;
            int At(long position) => message.Offset + (int)(position - origin);
            for (uint tag = input.ReadTag(); tag != 0; tag = input.ReadTag())
            {
                int field = WireFormat.GetTagFieldNumber(tag);
                if (WireFormat.GetTagWireType(tag) != WireFormat.WireType.LengthDelimited)
                {
                    input.SkipLastField();
                    continue;
                }
                // The audio is a oneof: as in parsing, the last of its fields on the wire is the one that counts.
                switch (field)
                {
                    case GenerateRequest.EmbeddingIdFieldNumber:
                        key = input.ReadString();
                        break;
                    case GenerateRequest.FramesFieldNumber or GenerateRequest.AudioBytesFieldNumber:
                        int start = At(input.Position);
                        input.SkipLastField();
                        int end = At(input.Position);
                        int length = new CodedInputStream(message.Array!, start, end - start).ReadLength();
                        key = Digest(field == GenerateRequest.FramesFieldNumber ? "frames" : "audio", message.Array.AsSpan(end - length, length));
                        break;
                    default:
                        input.SkipLastField();
                        break;
                }
            }
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
        return key is { Length: > 0 } ? key : null;
    }

    /// <summary>The key of a request the gateway built, by the same reading as a proxied call's.</summary>
    public static string? KeyOf(GenerateRequest request) => KeyOf(request.ToByteArray());

    /// <summary>
    /// Metadata that carries the request's key to <see cref="BackendClients"/>, so that a front's call goes where a
    /// proxied call about the clip goes; null when it has no key.
    /// </summary>
    public static Metadata? CallHeaders(GenerateRequest request) =>
        KeyOf(request) is { } key ? new Metadata { { Header, Encoding.UTF8.GetBytes(key) } } : null;

    /// <summary>The key a front's call carries, taken off the request: it is the gateway's, not the pod's.</summary>
    internal static string? TakeKey(HttpRequestMessage request)
    {
        if (!request.Headers.TryGetValues(Header, out IEnumerable<string>? values)) return null;
        request.Headers.Remove(Header);
        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(values.First()));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static string Digest(string kind, ReadOnlySpan<byte> bytes) => kind + ":" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>
    /// With a key, the first destination in the key's ranking that has fewer than <paramref name="maxConcurrentPerPod"/>
    /// calls in flight (the top one when none has); adding or losing a destination moves only the keys ranked first on
    /// it. Without a key, the less busy of two distinct random destinations, as YARP's PowerOfTwoChoices. Null when
    /// none is available.
    /// </summary>
    public static DestinationState? Pick(string? key, IReadOnlyList<DestinationState> available, int maxConcurrentPerPod)
    {
        if (available.Count <= 1) return available.Count == 1 ? available[0] : null;
        if (key is null)
        {
            int first = Random.Shared.Next(available.Count), second = Random.Shared.Next(available.Count - 1);
            if (second >= first) second++;
            return available[first].ConcurrentRequestCount <= available[second].ConcurrentRequestCount ? available[first] : available[second];
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), digest);
        (DestinationState? Destination, ulong Weight) top = default, topWithRoom = default;
        foreach (DestinationState destination in available)
        {
            ulong weight = Weight(digest, destination.DestinationId);
            if (Outranks(weight, destination, top)) top = (destination, weight);
            if (destination.ConcurrentRequestCount < maxConcurrentPerPod && Outranks(weight, destination, topWithRoom))
                topWithRoom = (destination, weight);
        }
        return topWithRoom.Destination ?? top.Destination;
    }

    /// <summary>
    /// The destination's weight for the key: SHA-256, not <see cref="string.GetHashCode()"/>, because every gateway
    /// replica, and the next process, must rank the pods alike.
    /// </summary>
    private static ulong Weight(ReadOnlySpan<byte> keyDigest, string destinationId)
    {
        int length = keyDigest.Length + Encoding.UTF8.GetByteCount(destinationId);
        Span<byte> input = length <= 512 ? stackalloc byte[length] : new byte[length];
        keyDigest.CopyTo(input);
        Encoding.UTF8.GetBytes(destinationId, input[keyDigest.Length..]);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, hash);
        return BinaryPrimitives.ReadUInt64BigEndian(hash);
    }

    /// <summary>Higher weight first; a tie (2^-64) goes to the lower id, so that the ranking never depends on order.</summary>
    private static bool Outranks(ulong weight, DestinationState destination, (DestinationState? Destination, ulong Weight) best) =>
        best.Destination is null || weight > best.Weight
        || (weight == best.Weight && string.CompareOrdinal(destination.DestinationId, best.Destination.DestinationId) < 0);
}

/// <summary>YARP's side of <see cref="ClipAffinity"/>: picks with the key that <see cref="GenerateKeyReader"/> found.</summary>
public sealed class ClipAffinityPolicy(IOptions<GatewayOptions> options) : ILoadBalancingPolicy
{
    public string Name => ClipAffinity.PolicyName;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations) =>
        ClipAffinity.Pick(context.Features.Get<ClipAffinity.KeyFeature>()?.Key, availableDestinations, options.Value.Affinity.MaxConcurrentPerPod);
}
