using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>Element type of a tensor as stored in a checkpoint file.</summary>
public enum StoredDType
{
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

/// <summary>One tensor of a checkpoint: its name, stored type and shape, and which file holds it.</summary>
public sealed record TensorEntry(string Name, StoredDType DType, long[] Shape, string File)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A set of named tensors on disk (one file or a sharded set). Data is read on demand, straight into a
/// destination tensor, so loading never holds a second full copy of the weights.
/// </summary>
public interface ITensorSource : IDisposable
{
    /// <summary>Every tensor the checkpoint holds, by name.</summary>
    IReadOnlyDictionary<string, TensorEntry> Entries { get; }

    /// <summary>
    /// Reads tensor <paramref name="name"/> into <paramref name="destination"/>, converting the stored dtype
    /// to the destination's. The destination must be contiguous, on the CPU, and of the entry's shape.
    /// </summary>
    void ReadInto(string name, torch.Tensor destination);
}

/// <summary>A checkpoint that is missing, malformed, or does not fit the model; the message names the file or tensor.</summary>
public class CheckpointException : Exception
{
    public CheckpointException(string message) : base(message) { }
    public CheckpointException(string message, Exception inner) : base(message, inner) { }
}
