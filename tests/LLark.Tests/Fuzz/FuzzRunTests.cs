using CsCheck;
using Google.Protobuf;

namespace LLark.Tests.Fuzz;

/// <summary>The promise FuzzRun's failure messages make: the seed a case names gives that case again.</summary>
public sealed class FuzzRunTests
{
    [Fact]
    public void ACaseReplaysFromTheSeedItsFailureNames()
    {
        for (int i = 0; i < 50; i++)
        {
            var pcg = new PCG((uint)(i * 7919), (ulong)i * 104_729UL + 12345);
            string seed = pcg.ToString();
            byte[] drawn = RequestGen.Generate.Generate(pcg, null, out _).ToByteArray();
            Assert.Equal(drawn, RequestGen.Generate.Generate(PCG.Parse(seed), null, out _).ToByteArray());
        }
    }
}
