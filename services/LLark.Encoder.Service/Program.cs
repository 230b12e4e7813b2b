using LLark.Encoder.Service;

WebApplication app = EncoderServiceHost.Build(args);
await app.RunAsync();
