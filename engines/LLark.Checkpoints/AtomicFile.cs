namespace LLark.Checkpoints;

/// <summary>Files that appear whole or not at all: written beside the target, then renamed over it.</summary>
public static class AtomicFile
{
    public static void WriteText(string path, string text)
    {
        string temporary = path + ".partial";
        File.WriteAllText(temporary, text);
        File.Move(temporary, path, overwrite: true);
    }

    public static void Copy(string source, string path)
    {
        string temporary = path + ".partial";
        File.Copy(source, temporary, overwrite: true);
        File.Move(temporary, path, overwrite: true);
    }
}
