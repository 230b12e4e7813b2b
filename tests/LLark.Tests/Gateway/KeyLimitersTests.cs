using LLark.Gateway;
using Microsoft.Extensions.Options;

namespace LLark.Tests.Gateway;

public sealed class KeyLimitersTests
{
    [Fact]
    public void ACallRefusedForTooManyStreamsSpendsNoRateToken()
    {
        var options = new GatewayOptions
        {
            // Two tokens and, at this rate, no refill during the test.
            ApiKeys = [new ApiKeyOptions { Name = "k", Sha256 = new string('a', 64), RequestsPerSecond = 0.001, Burst = 2, MaxConcurrentStreams = 1 }],
        };
        var store = new ApiKeyStore(Options.Create(options));
        using var limiters = new KeyLimiters(store);
        ApiKey key = Assert.Single(store.Keys);

        var (running, refused) = limiters.TryAcquire(key);
        Assert.Null(refused);
        for (int i = 0; i < 5; i++)
        {
            var (lease, refusal) = limiters.TryAcquire(key);
            Assert.Null(lease);
            Assert.Equal("streams", refusal?.Limit);
        }
        running!.Dispose();

        var (second, none) = limiters.TryAcquire(key);
        Assert.Null(none);
        second!.Dispose();
        Assert.Equal("rate", limiters.TryAcquire(key).Refused?.Limit);
    }
}
