# syntax=docker/dockerfile:1
# The encoder service image. Build from the repository root (see docker/README.md):
#   docker build -f docker/encoder.Dockerfile -t llark/encoder:dev-cpu .
#   docker build -f docker/encoder.Dockerfile --build-arg TORCH_BACKEND=cuda -t llark/encoder:dev-cuda .
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
    dotnet publish services/LLark.Encoder.Service/LLark.Encoder.Service.csproj -c Release -r linux-x64 --self-contained false \
      -p:TorchBackend=${TORCH_BACKEND} -p:UseAppHost=false -o /app

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble AS runtime-cpu
ENV LLark__Encoder__Device=cpu \
    LLark__Encoder__DType=fp32

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
    LLark__Encoder__Device=cuda \
    LLark__Encoder__DType=bf16

FROM runtime-${TORCH_BACKEND} AS final
WORKDIR /app
COPY --from=build /app ./
# The spectral encoder's settings (no weights), the demo LLark's encoder, so that the image answers before any volume is
# mounted. It pools at the 5 fps the demo LLark was trained on; a deployment sets LLark__Encoder__Fps to its LLark's.
COPY models/spectral/ /opt/llark/models/spectral/
# ASPNETCORE_HTTP_PORTS is cleared because the listeners come from LLark:Listen (LLark.ServiceDefaults). Bound to every
# interface, the service will not start without LLark__Internal__Token(File), the token the gateway sends it.
ENV ASPNETCORE_HTTP_PORTS= \
    LLark__Listen__Address=0.0.0.0 \
    LLark__Listen__GrpcPort=5002 \
    LLark__Listen__HttpPort=9464 \
    LLark__Encoder__ModelPath=/opt/llark/models/spectral \
    LLark__Encoder__Fps=5 \
    LLark__Encoder__Cache__Directory=/var/cache/llark-encoder
# The disk tier of the embedding cache: the app's own folder is not writable by its user; Kubernetes mounts a volume here.
RUN mkdir -p /var/cache/llark-encoder && chown 1654:1654 /var/cache/llark-encoder
EXPOSE 5002 9464
USER 1654
ENTRYPOINT ["dotnet", "LLark.Encoder.Service.dll"]
