namespace FractalMesh.Model;
public static class Probe { public static float Dot() { using var a = TorchSharp.torch.ones(4, 4); using var b = a.matmul(a); return b.sum().item<float>(); } }
