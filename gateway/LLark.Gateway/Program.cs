using LLark.Gateway;

WebApplication app = GatewayHost.Build(args);
await app.RunAsync();
