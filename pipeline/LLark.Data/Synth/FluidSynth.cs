using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using NAudio.Wave;

namespace LLark.Data.Synth;

/// <summary>An input the user gave is wrong: a soundfont that is missing or not a SoundFont, arguments that do not fit.</summary>
public sealed class SynthInputException(string message) : Exception(message);

/// <summary>A tool the synthesiser runs (FluidSynth) is not installed or could not start.</summary>
public sealed class ToolUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Renders MIDI files to audio with the <c>fluidsynth</c> command (headless, faster than real time).</summary>
public static class FluidSynth
{
    public const int SampleRate = 44100;

    /// <summary>The Debian soundfonts that tools/setup.sh installs (fluid-soundfont-gm, timgm6mb-soundfont).</summary>
    public static readonly IReadOnlyList<string> DefaultSoundFonts = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"];

    /// <summary>Checks that a soundfont exists and is a SoundFont 2 file (RIFF form type "sfbk"); returns its full path.</summary>
    public static string CheckSoundFont(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new SynthInputException($"soundfont not found: {path}");
        var header = new byte[12];
        using (var file = File.OpenRead(full))
        {
            if (file.ReadAtLeast(header, 12, throwOnEndOfStream: false) < 12
                || Encoding.ASCII.GetString(header, 0, 4) != "RIFF" || Encoding.ASCII.GetString(header, 8, 4) != "sfbk")
                throw new SynthInputException($"{path} is not a SoundFont 2 file (no RIFF/sfbk header)");
        }
        return full;
    }

    /// <summary>Renders <paramref name="midi"/> to a 32-bit float stereo WAV at 44.1 kHz and returns it downmixed to mono.</summary>
    public static float[] Render(string midi, string soundFont, string wav, double gain, CancellationToken cancel = default)
    {
        var start = new ProcessStartInfo("fluidsynth")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[]
                 {
                     "-ni", "-q", "-g", gain.ToString("0.###", CultureInfo.InvariantCulture), "-r", SampleRate.ToString(CultureInfo.InvariantCulture),
                     "-O", "float", "-T", "wav", "-o", "synth.cpu-cores=1", "-F", wav, soundFont, midi,
                 })
            start.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new ToolUnavailableException("fluidsynth did not start");
        }
        catch (Win32Exception e)
        {
            throw new ToolUnavailableException("fluidsynth is not installed (apt-get install fluidsynth; tools/setup.sh does it)", e);
        }
        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancel);
            Task<string> stderr = process.StandardError.ReadToEndAsync(cancel);
            using (cancel.Register(() => { try { process.Kill(); } catch (InvalidOperationException) { } }))
            {
                if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
                {
                    process.Kill();
                    throw new IOException($"fluidsynth took over 5 minutes on {midi}");
                }
            }
            cancel.ThrowIfCancellationRequested();
            string errors = stderr.Result.Trim();
            _ = stdout.Result;
            if (process.ExitCode != 0 || !File.Exists(wav))
                throw new IOException($"fluidsynth failed (exit {process.ExitCode}) on {midi}: {errors}");
        }
        return ReadMono(wav);
    }

    /// <summary>Reads a WAV file as mono floats (the mean of its channels).</summary>
    public static float[] ReadMono(string wav)
    {
        using var reader = new WaveFileReader(wav);
        ISampleProvider samples = reader.ToSampleProvider();
        int channels = reader.WaveFormat.Channels;
        var buffer = new float[16384 * channels];
        var mono = new List<float>((int)(reader.SampleCount > 0 ? reader.SampleCount : 0));
        int read;
        while ((read = samples.Read(buffer.AsSpan())) > 0)
        {
            for (int i = 0; i + channels <= read; i += channels)
            {
                float sum = 0;
                for (int c = 0; c < channels; c++) sum += buffer[i + c];
                mono.Add(sum / channels);
            }
        }
        return [.. mono];
    }

    /// <summary>Writes mono 16-bit PCM, atomically (a temporary file, then rename).</summary>
    public static void WriteMono16(string path, ReadOnlySpan<float> samples, int sampleRate = SampleRate)
    {
        string temp = path + ".tmp";
        using (var writer = new WaveFileWriter(temp, new WaveFormat(sampleRate, 16, 1)))
        {
            var bytes = new byte[samples.Length * 2];
            for (int i = 0; i < samples.Length; i++)
            {
                short s = (short)Math.Clamp(Math.Round(samples[i] * 32767.0), -32768, 32767);
                bytes[2 * i] = (byte)s;
                bytes[2 * i + 1] = (byte)(s >> 8);
            }
            writer.Write(bytes, 0, bytes.Length);
        }
        File.Move(temp, path, overwrite: true);
    }
}
