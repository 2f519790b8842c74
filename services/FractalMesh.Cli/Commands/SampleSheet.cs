using FractalMesh.Imaging;
using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;

namespace FractalMesh.Cli.Commands;

/// <summary>A grid with a row of samples per class: what a checkpoint has learned, at a glance.</summary>
public static class SampleSheet
{
    /// <summary>Samples <paramref name="perClass"/> images of every class (seeds seed, seed+1, …) and writes them as one PNG.</summary>
    public static string Write(FractalModel model, string path, int perClass, long seed, float cfg = 3f)
    {
        var config = model.Config;
        bool wasTraining = model.training;
        try
        {
            var requests = Enumerable.Range(0, config.ClassNum)
                .SelectMany(c => Enumerable.Range(0, perClass).Select(k => new ImageRequest(c, seed + c * perClass + k))).ToList();
            var options = new SamplingOptions
            {
                Cfg = cfg,
                NumIter = SamplingOptions.DefaultNumIter(config),
            };
            var bytes = new FractalSampler(model).Generate(requests, options);
            int size = config.ImageSizes[0], n = 3 * size * size;
            var images = Enumerable.Range(0, requests.Count).Select(i => bytes.AsSpan(i * n, n).ToArray()).ToList();
            var (grid, w, h) = PngImage.Grid(images, size, perClass);
            File.WriteAllBytes(path, PngImage.Encode(grid, w, h, scale: 3));
            return path;
        }
        finally
        {
            model.train(wasTraining);
        }
    }
}
