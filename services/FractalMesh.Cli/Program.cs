Console.WriteLine(FractalMesh.Model.Probe.Dot());
