namespace LLark.Checkpoints;

/// <summary>How far a load has got; reported after each tensor.</summary>
/// <param name="TensorsDone">Tensors loaded so far, the current one included.</param>
/// <param name="TensorsTotal">Tensors the load will read.</param>
/// <param name="BytesDone">Bytes read from the checkpoint so far, counted in the stored dtype.</param>
/// <param name="BytesTotal">Bytes the load will read.</param>
/// <param name="CurrentName">The tensor just loaded.</param>
public sealed record LoadProgress(int TensorsDone, int TensorsTotal, long BytesDone, long BytesTotal, string CurrentName);
