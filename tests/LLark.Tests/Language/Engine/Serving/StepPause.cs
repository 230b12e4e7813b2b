using LLark.Language.Engine.Serving;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.Language.Engine.Serving;

/// <summary>
/// A pause after every decode step, so a test can hold a request "running" for as long as it needs whatever the
/// model's speed.
/// </summary>
internal sealed class StepPause : IDecodeStepHook
{
    private long ticks;

    public StepPause(TimeSpan pause = default) => Pause = pause;

    public TimeSpan Pause
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref ticks));
        set => Interlocked.Exchange(ref ticks, value.Ticks);
    }

    public void AfterStep()
    {
        TimeSpan pause = Pause;
        if (pause > TimeSpan.Zero) Thread.Sleep(pause);
    }

    /// <summary><paramref name="configure"/>, plus a pause (none until set) that the language host gives its scheduler.</summary>
    public static Action<WebApplicationBuilder> In(Action<WebApplicationBuilder> configure) => builder =>
    {
        configure(builder);
        builder.Services.AddSingleton<IDecodeStepHook, StepPause>();
    };

    /// <summary>The pause of a host built with <see cref="In"/>.</summary>
    public static StepPause Of(LoopbackHost host) => (StepPause)host.App.Services.GetRequiredService<IDecodeStepHook>();
}
