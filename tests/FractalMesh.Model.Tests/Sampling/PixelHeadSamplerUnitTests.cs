using FractalMesh.Model.Modules;
using FractalMesh.Model.Sampling;
using Xunit;
using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

public class PixelHeadSamplerUnitTests
{
    /// <summary>Pearson's χ² of observed counts against expected probabilities, bins with expected count below 5 merged.</summary>
    static (double Chi2, int Dof) ChiSquare(int[] counts, float[] probs, int n)
    {
        double chi2 = 0, poolObs = 0, poolExp = 0;
        int bins = 0;
        for (int v = 0; v < counts.Length; v++)
        {
            double expected = probs[v] * n;
            if (expected < 5) { poolObs += counts[v]; poolExp += expected; continue; }
            chi2 += (counts[v] - expected) * (counts[v] - expected) / expected;
            bins++;
        }
        if (poolExp > 0) { chi2 += (poolObs - poolExp) * (poolObs - poolExp) / poolExp; bins++; }
        return (chi2, bins - 1);
    }

    /// <summary>Upper 0.1% point of χ² (Wilson–Hilferty).</summary>
    static double Critical(int dof)
    {
        double z = 3.0902, a = 2.0 / (9 * dof);
        return dof * Math.Pow(1 - a + z * Math.Sqrt(a), 3);
    }

    [Fact]
    public void RedFollowsSoftmaxOfTemperatureTimesLogits()
    {
        manual_seed(11);
        using var head = new PixelHead(condWidth: 16, width: 16, depth: 1, heads: 2, rWeight: 1);
        using (no_grad()) head.state_dict()["r_mlm.bias"].copy_(randn(1, 256) * 2.5f); // a peaked, structured distribution
        head.eval();
        const int n = 6000;
        const float temperature = 0.7f;
        using var scope = NewDisposeScope();
        var cond = randn(1, 16).expand(n, 16).contiguous();
        var sampler = new PixelHeadSampler(head, level: 0);
        var request = new PatchRequest
        {
            Conds = [cond], Size = 1, KnownPixels = new byte[n * 3], KnownMask = new bool[n],
            Cfg = Enumerable.Repeat(1f, n).ToArray(), Temperature = Enumerable.Repeat(temperature, n).ToArray(),
            FilterThreshold = new float[n], NumIter = [],
            Streams = Enumerable.Range(0, n).Select(i => RowStream.ForImage(i)).ToArray(),
        };
        var bytes = SampleNow(sampler, request);
        var counts = new int[256];
        for (int i = 0; i < n; i++) counts[bytes[i * 3]]++;

        Tensor logits;
        using (no_grad()) logits = head.Logits(zeros(1, 3, dtype: ScalarType.Int64), cond.narrow(0, 0, 1)).select(1, 0);
        var expected = softmax(logits * temperature, -1).data<float>().ToArray();
        var (chi2, dof) = ChiSquare(counts, expected, n);
        Assert.True(chi2 < Critical(dof), $"χ²={chi2:F1} with {dof} dof, critical {Critical(dof):F1}");

        // The same draws are clearly not softmax(logits) without the temperature: the test can tell them apart.
        var wrong = softmax(logits, -1).data<float>().ToArray();
        var (chi2Wrong, dofWrong) = ChiSquare(counts, wrong, n);
        Assert.True(chi2Wrong > Critical(dofWrong), $"χ²={chi2Wrong:F1} with {dofWrong} dof should exceed {Critical(dofWrong):F1}");
    }

    [Fact]
    public void ChannelStepsWithTheCacheEqualTheFullPass()
    {
        manual_seed(4);
        using var head = new PixelHead(condWidth: 16, width: 32, depth: 2, heads: 4, rWeight: 5);
        head.eval();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = randint(0, 256, [64, 3], dtype: ScalarType.Int64);
        var cond = randn(64, 16);
        var full = head.Logits(ids, cond);
        PixelHeadCache? cache = null;
        for (int channel = 0; channel < 3; channel++)
        {
            var input = channel == 0 ? cond : ids.select(1, channel - 1);
            var own = head.StepLogits(channel, input, cache, out var next);
            cache?.Dispose();
            cache = next;
            double error = (own - full.select(1, channel)).abs().max().item<float>();
            Assert.True(error <= 1e-5, $"channel {channel}: max abs difference {error}");
        }
        cache!.Dispose();

        // The cache is what the steps after the first read: without one, channel 1 is refused.
        Assert.Throws<ArgumentException>(() => head.StepLogits(1, ids.select(1, 0), null, out var unused));
    }

    /// <summary>Samples on the thread pool and waits: the test's dispose scope stays on this thread.</summary>
    static byte[] SampleNow(IPatchSampler sampler, PatchRequest request) =>
        Task.Run(() => sampler.SampleAsync(request)).GetAwaiter().GetResult();

    [Fact]
    public void InverseCdfPicksTheValueWhoseIntervalHoldsU()
    {
        float[] p = [0.25f, 0f, 0.5f, 0.25f];
        Assert.Equal(0, PixelHeadSampler.InverseCdf(p, 0.0));
        Assert.Equal(0, PixelHeadSampler.InverseCdf(p, 0.2499));
        Assert.Equal(2, PixelHeadSampler.InverseCdf(p, 0.25));
        Assert.Equal(2, PixelHeadSampler.InverseCdf(p, 0.7499));
        Assert.Equal(3, PixelHeadSampler.InverseCdf(p, 0.9999999));
    }
}
