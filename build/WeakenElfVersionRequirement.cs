// Compiled by MSBuild's RoslynCodeTaskFactory (see TorchSharpNative.targets).
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenElfVersionRequirement : Task
{
    [Required] public ITaskItem[] Files { get; set; }
    [Required] public string Version { get; set; }

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6",
        "/usr/lib/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
    };

    public override bool Execute()
    {
        string libstdcxx = Array.Find(LibStdCxxCandidates, File.Exists);
        if (libstdcxx == null)
        {
            Log.LogMessage(MessageImportance.Low, "No system libstdc++ found; libLibTorchSharp.so left as is.");
            return true;
        }
        if (Contains(File.ReadAllBytes(libstdcxx), Encoding.ASCII.GetBytes(Version + "\0")))
        {
            Log.LogMessage(MessageImportance.Low, $"{libstdcxx} provides {Version}; nothing to patch.");
            return true;
        }
        foreach (ITaskItem item in Files)
        {
            string path = item.ItemSpec;
            try
            {
                byte[] elf = File.ReadAllBytes(path);
                int changed = Weaken(elf, Version);
                if (changed < 0)
                {
                    Log.LogError($"{path}: not a 64-bit little-endian ELF file with .gnu.version_r; cannot weaken {Version}.");
                    return false;
                }
                if (changed == 0) continue;
                // Write a new file instead of in place: the output copy may be a hard link into the NuGet cache.
                string tmp = path + ".weak.tmp";
                File.WriteAllBytes(tmp, elf);
                File.Delete(path);
                File.Move(tmp, path);
                Log.LogMessage(MessageImportance.High, $"Marked {Version} weak in {path} (system libstdc++ lacks it).");
            }
            catch (IOException e)
            {
                Log.LogError($"{path}: {e.Message}");
                return false;
            }
        }
        return true;
    }

    /// <returns>number of requirements changed, or -1 when the file is not an ELF we understand.</returns>
    static int Weaken(byte[] f, string version)
    {
        if (f.Length < 64 || f[0] != 0x7f || f[1] != (byte)'E' || f[2] != (byte)'L' || f[3] != (byte)'F'
            || f[4] != 2 || f[5] != 1)
            return -1;
        long shoff = (long)BitConverter.ToUInt64(f, 0x28);
        int shentsize = BitConverter.ToUInt16(f, 0x3A);
        int shnum = BitConverter.ToUInt16(f, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(f, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(f, (int)sh + 24);
            int link = (int)BitConverter.ToUInt32(f, (int)sh + 40);
            int count = (int)BitConverter.ToUInt32(f, (int)sh + 44);
            long strtab = (long)BitConverter.ToUInt64(f, (int)(shoff + (long)link * shentsize) + 24);
            int changed = 0;
            long vn = offset;
            for (int n = 0; n < count; n++)
            {
                int cnt = BitConverter.ToUInt16(f, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(f, (int)vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    string name = ReadCString(f, strtab + BitConverter.ToUInt32(f, (int)aux + 8));
                    ushort flags = BitConverter.ToUInt16(f, (int)aux + 4);
                    if (name == version && (flags & VerFlgWeak) == 0)
                    {
                        BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(f, (int)aux + 4);
                        changed++;
                    }
                    aux += BitConverter.ToUInt32(f, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(f, (int)vn + 12);
            }
            return changed;
        }
        return -1;
    }

    static string ReadCString(byte[] f, long at)
    {
        int end = (int)at;
        while (f[end] != 0) end++;
        return Encoding.ASCII.GetString(f, (int)at, end - (int)at);
    }

    static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }
}
