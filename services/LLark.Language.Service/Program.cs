using LLark.Language.Service;
using LLark.ServiceDefaults;

WebApplication app = LanguageServiceHost.Build(args);
await app.RunAsync();
