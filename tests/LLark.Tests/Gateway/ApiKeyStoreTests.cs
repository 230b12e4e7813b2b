using LLark.Gateway;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using static LLark.Tests.Gateway.GatewayTestHost;

namespace LLark.Tests.Gateway;

public sealed class ApiKeyStoreTests
{
    private static ApiKeyStore Store(params (string Name, string Key)[] keys) => new(Options.Create(new GatewayOptions
    {
        ApiKeys = [.. keys.Select(k => new ApiKeyOptions { Name = k.Name, Sha256 = Sha256Hex(k.Key).ToUpperInvariant() })],
    }));

    private static HeaderDictionary Headers(string name, string value) => new() { [name] = value };

    [Theory]
    [InlineData("authorization", "Bearer s3cret-b", "b")]
    [InlineData("authorization", "bearer   s3cret-a ", "a")]
    [InlineData("x-api-key", "s3cret-b", "b")]
    public void AKeyIsFoundByItsHashFromEitherHeader(string header, string value, string name)
    {
        ApiKeyStore store = Store(("a", "s3cret-a"), ("b", "s3cret-b"));
        (ApiKey? key, string? failure) = store.Authenticate(Headers(header, value));
        Assert.Null(failure);
        Assert.Equal(name, key!.Name);
    }

    [Fact]
    public void MissingAndUnknownKeysAreToldApart()
    {
        ApiKeyStore store = Store(("a", "s3cret-a"));
        Assert.Equal("missing", store.Authenticate(new HeaderDictionary()).Failure);
        Assert.Equal("missing", store.Authenticate(Headers("authorization", "Bearer ")).Failure);
        Assert.Equal("unknown", store.Authenticate(Headers("x-api-key", "s3cret-A")).Failure);
        Assert.Equal("unknown", store.Authenticate(Headers("authorization", "Bearer " + Sha256Hex("s3cret-a"))).Failure);
    }

    [Fact]
    public void KeysComeFromAFileWithCommentsAndTheDefaultLimits()
    {
        using var dir = new global::LLark.Tests.Checkpoints.TempDirectory();
        string file = Path.Combine(dir.Path, "keys");
        File.WriteAllText(file, $"# team keys\n\nalice:{Sha256Hex("ka")}\n  bob : {Sha256Hex("kb")}  \n");
        var limits = new KeyLimitOptions { Burst = 3 };
        IReadOnlyList<ApiKey> keys = ApiKeyFile.Parse(file, limits);
        Assert.Equal(["alice", "bob"], keys.Select(k => k.Name));
        Assert.All(keys, k => Assert.Same(limits, k.Limits));
    }
}
