# syntax=docker/dockerfile:1
# The gateway image. Build from the repository root (see docker/README.md):
#   docker build -f docker/gateway.Dockerfile -t llark/gateway:dev .
# No tensors run here, so there is no TorchSharp and one variant only, on the chiseled (shell-less, non-root) runtime.

ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION}-noble AS build
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY protos/ protos/
COPY common/ common/
COPY gateway/ gateway/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish gateway/LLark.Gateway/LLark.Gateway.csproj -c Release -r linux-x64 --self-contained false \
      -p:UseAppHost=false -o /app

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble-chiseled AS final
WORKDIR /app
COPY --from=build /app ./
# gRPC (HTTP/2 cleartext) on 5000; the JSON/SSE front, /metrics and /healthz (HTTP/1.1) on 8080; on every interface,
# as a container's own loopback is reached by nothing.
ENV ASPNETCORE_HTTP_PORTS= \
    LLark__Listen__Address=0.0.0.0 \
    LLark__Listen__GrpcPort=5000 \
    LLark__Listen__HttpPort=8080
EXPOSE 5000 8080
USER 1654
ENTRYPOINT ["dotnet", "LLark.Gateway.dll"]
