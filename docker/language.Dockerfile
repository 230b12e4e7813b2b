# syntax=docker/dockerfile:1
# The language service image. Build from the repository root (see docker/README.md):
#   docker build -f docker/language.Dockerfile -t llark/language:dev-cpu .
#   docker build -f docker/language.Dockerfile --build-arg TORCH_BACKEND=cuda -t llark/language:dev-cuda .
# TORCH_BACKEND is passed on as -p:TorchBackend (Directory.Build.targets: TorchSharp-cpu or TorchSharp-cuda-linux)
# and picks the runtime stage below.

ARG TORCH_BACKEND=cpu
ARG DOTNET_VERSION=10.0
# The "base" flavour: libtorch's NuGet packages bring their own cuBLAS/cuDNN, so the "runtime" flavour's copies
# would only add gigabytes. Only the driver comes from the node (through the NVIDIA container runtime).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION}-noble AS build
ARG TORCH_BACKEND
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY protos/ protos/
COPY common/ common/
COPY engines/ engines/
COPY services/ services/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish services/LLark.Language.Service/LLark.Language.Service.csproj -c Release -r linux-x64 --self-contained false \
      -p:TorchBackend=${TORCH_BACKEND} -p:UseAppHost=false -o /app

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS runtime-cpu
ENV LLark__Language__Device=cpu \
    LLark__Language__DType=fp32

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS dotnet

FROM ${CUDA_IMAGE} AS runtime-cuda
# What the ASP.NET runtime needs on Ubuntu 24.04, and the same non-root user (1654) the .NET images have.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libicu74 libssl3t64 tzdata zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1654 app \
 && useradd --uid 1654 --gid 1654 --no-create-home --home-dir /app --shell /usr/sbin/nologin app
COPY --from=dotnet /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_ROOT=/usr/share/dotnet \
    LLark__Language__Device=cuda \
    LLark__Language__DType=bf16

FROM runtime-${TORCH_BACKEND} AS final
WORKDIR /app
COPY --from=build /app ./
# The bundled demo LLark (57 MB; models/README.md), so that the image answers before any volume is mounted.
COPY models/llark-demo/ /opt/llark/models/llark-demo/
# ASPNETCORE_HTTP_PORTS is cleared because the listeners come from LLark:Listen (LLark.ServiceDefaults). Bound to every
# interface, the service will not start without LLark__Internal__Token(File), the token the gateway sends it.
ENV ASPNETCORE_HTTP_PORTS= \
    LLark__Listen__Address=0.0.0.0 \
    LLark__Listen__GrpcPort=5001 \
    LLark__Listen__HttpPort=9464 \
    LLark__Language__ModelPath=/opt/llark/models/llark-demo
EXPOSE 5001 9464
USER 1654
ENTRYPOINT ["dotnet", "LLark.Language.Service.dll"]
