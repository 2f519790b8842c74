using FractalMesh.HealthProbe;

// A container health check for images without curl or grpc_health_probe (docker-compose.yml, deploy/): asks one
// grpc.health.v1 service or one HTTP health endpoint and exits 0 when it is healthy, 1 when not, 2 on a usage error.
return await Probe.RunAsync(args);
