# syntax=docker/dockerfile:1
# The gateway (gateway/FractalMesh.Gateway): the public gRPC API on 5080 and its REST bridge with /healthz/* on 5081.
# From the repository root:
#
#   docker build -f deploy/gateway.Dockerfile -t fractalmesh/gateway .
#   docker build -f deploy/gateway.Dockerfile --build-arg LIBTORCH_BACKEND=cuda -t fractalmesh/gateway:cuda .
#
# LIBTORCH_BACKEND is the build property -p:LibTorchBackend (`cpu` or `cuda`), as for deploy/level-service.Dockerfile:
# the gateway loads the model itself in embedded mode (and level 0 when the levels below run as level services).
ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG LIBTORCH_BACKEND=cpu
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY protos/ protos/
COPY services/ services/
COPY gateway/ gateway/
RUN --mount=type=cache,id=fractalmesh-nuget-${LIBTORCH_BACKEND},target=/root/.nuget/packages \
    dotnet publish gateway/FractalMesh.Gateway/FractalMesh.Gateway.csproj -c Release -o /out/app \
        -p:LibTorchBackend=${LIBTORCH_BACKEND} -p:UseAppHost=false \
 && dotnet publish services/FractalMesh.HealthProbe/FractalMesh.HealthProbe.csproj -c Release -o /out/probe -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
WORKDIR /app
COPY --from=build /out/app ./
COPY --from=build /out/probe /probe/
COPY models/emoji32-demo.safetensors /models/
# The gateway binds its own two addresses (Gateway:GrpcUrl, Gateway:RestUrl), on every interface inside a container.
ENV Gateway__ModelPath=/models/emoji32-demo.safetensors \
    Gateway__GrpcUrl=http://*:5080 \
    Gateway__RestUrl=http://*:5081
EXPOSE 5080 5081
USER $APP_UID
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["dotnet", "/probe/FractalMesh.HealthProbe.dll", "http", "http://127.0.0.1:5081/healthz/ready"]
ENTRYPOINT ["dotnet", "FractalMesh.Gateway.dll"]
