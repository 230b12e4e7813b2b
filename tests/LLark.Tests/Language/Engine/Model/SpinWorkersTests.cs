using LLark.Language.Engine.Model;

namespace LLark.Tests.Language.Engine.Model;

public sealed class SpinWorkersTests
{
    [Fact]
    public void EveryPartOfEveryJobRunsExactlyOnceWithTheSamePartCount()
    {
        // Jobs back to back, as a decode step issues them: a worker that arrives late must neither run a part of
        // the job it woke for once a later one has started, nor a part twice.
        const int jobs = 5000;
        int parts = -1;
        var runs = new int[jobs, 256];
        bool partsChanged = false;
        for (int j = 0; j < jobs; j++)
        {
            int job = j;
            SpinWorkers.Shared.Run((part, count) =>
            {
                if (parts < 0) Interlocked.CompareExchange(ref parts, count, -1);
                if (count != Volatile.Read(ref parts)) partsChanged = true;
                Interlocked.Increment(ref runs[job, part]);
                // Uneven parts, so threads overtake one another.
                if ((part + job) % 7 == 0) Thread.SpinWait(200);
            });
        }
        Assert.False(partsChanged);
        Assert.InRange(parts, SpinWorkers.Shared.Parallelism, 255);
        for (int j = 0; j < jobs; j++)
        for (int p = 0; p < 256; p++)
        {
            if (runs[j, p] != (p < parts ? 1 : 0)) Assert.Fail($"job {j} part {p} of {parts} ran {runs[j, p]} times");
        }
    }
}
