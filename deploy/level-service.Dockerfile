# syntax=docker/dockerfile:1
# The level service (services/FractalMesh.LevelService): one image for every level, the levels it serves chosen by
# configuration (Level__FirstLevel, Level__LastLevel, Level__NextAddresses__0, ...; see its README). From the repository root:
#
#   docker build -f deploy/level-service.Dockerfile -t fractalmesh/level-service .
#   docker build -f deploy/level-service.Dockerfile --build-arg LIBTORCH_BACKEND=cuda -t fractalmesh/level-service:cuda .
#
# LIBTORCH_BACKEND is the build property -p:LibTorchBackend: `cpu` (default) or `cuda`, which restores TorchSharp-cuda-linux
# (libtorch with its CUDA libraries, several GB). A cuda image runs on the same base: the host needs only the NVIDIA driver
# and the NVIDIA container toolkit (`docker run --gpus all`, or nvidia.com/gpu in Kubernetes), and Level__Device=cuda.
ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG LIBTORCH_BACKEND=cpu
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY protos/ protos/
COPY services/ services/
# The package cache survives between builds (BuildKit), so a source change does not download libtorch again.
RUN --mount=type=cache,id=fractalmesh-nuget-${LIBTORCH_BACKEND},target=/root/.nuget/packages \
    dotnet publish services/FractalMesh.LevelService/FractalMesh.LevelService.csproj -c Release -o /out/app \
        -p:LibTorchBackend=${LIBTORCH_BACKEND} -p:UseAppHost=false \
 && dotnet publish services/FractalMesh.HealthProbe/FractalMesh.HealthProbe.csproj -c Release -o /out/probe -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
WORKDIR /app
COPY --from=build /out/app ./
COPY --from=build /out/probe /probe/
# The demo model, so that the image runs as it is; mount a volume over /models (or elsewhere) for your own checkpoint.
COPY models/emoji32-demo.safetensors /models/
# gRPC (HTTP/2 without TLS) on 5101; Prometheus /metrics on 9464 once Observability__MetricsUrl is set (compose, k8s do).
ENV ASPNETCORE_HTTP_PORTS=5101 \
    Level__Model=/models/emoji32-demo.safetensors
EXPOSE 5101 9464
USER $APP_UID
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["dotnet", "/probe/FractalMesh.HealthProbe.dll", "grpc", "http://127.0.0.1:5101", "readiness"]
ENTRYPOINT ["dotnet", "FractalMesh.LevelService.dll"]
