using LLark.Data;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Evaluation;

public sealed class ModelLocatorTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-locate-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static string? NoEnvironment(string name) => null;

    [Fact]
    public void BundledModelsAreFoundAboveTheStartingFolder()
    {
        ResolvedModel model = ModelLocator.Resolve(ModelLocator.Language, null, NoEnvironment, [AppContext.BaseDirectory]);
        Assert.Equal(Path.Combine(RepoPaths.Root, "models", "llark-demo"), model.Directory);
        Assert.Equal("bundled", model.Source);
        Assert.EndsWith(Path.Combine("models", "spectral"), ModelLocator.Resolve(ModelLocator.Encoder, null, NoEnvironment, [AppContext.BaseDirectory]).Directory, StringComparison.Ordinal);
    }

    [Fact]
    public void GivenFolderThenVariablesComeFirst()
    {
        string named = Directory.CreateDirectory(Path.Combine(dir, "named")).FullName;
        string models = Directory.CreateDirectory(Path.Combine(dir, "models-root", "spectral")).Parent!.FullName;
        Assert.Equal(named, ModelLocator.Resolve(ModelLocator.Encoder, named, NoEnvironment).Directory);
        Assert.Equal(named, ModelLocator.Resolve(ModelLocator.Encoder, null, v => v == "LLARK_ENCODER" ? named : null).Directory);
        ResolvedModel viaRoot = ModelLocator.Resolve(ModelLocator.Encoder, null, v => v == ModelLocator.ModelsDirVariable ? models : null);
        Assert.Equal(Path.Combine(models, "spectral"), viaRoot.Directory);
        Assert.Equal("$LLARK_MODELS_DIR/spectral", viaRoot.Source);
    }

    [Fact]
    public void MissingFoldersSayWhatWasTried()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => ModelLocator.Resolve(ModelLocator.Language, Path.Combine(dir, "nope"), NoEnvironment));
        Assert.Contains("--model", e.Message, StringComparison.Ordinal);
        var none = Assert.Throws<DirectoryNotFoundException>(() => ModelLocator.Resolve(ModelLocator.Language, null, NoEnvironment, [dir]));
        Assert.Contains("LLARK_MODEL", none.Message, StringComparison.Ordinal);
    }
}
