using Microsoft.Extensions.Configuration;
using ShopReference.Hosting;

var builder = DistributedApplication.CreateBuilder(args);

// Valkey in a container when Docker answers, else a local valkey-server/redis-server (Infrastructure:Mode chooses).
var mode = InfrastructureModeResolver.Resolve(builder);

// The sample's own ACL user: its keys and its channels, nothing else (the cache announces fills over pub/sub).
var sample = builder.AddValkeyUser("sample", "~sample:* &sample:*");
var valkey = builder.AddValkey("valkey", mode, builder.Configuration.GetValue<int?>("Sample:ValkeyPort"), [sample]);

builder.AddProject<Projects.Sample_Api>("api")
    .WithHttpEndpoint(port: builder.Configuration.GetValue<int?>("Sample:ApiPort"))
    .WithValkeyUser(valkey, sample);

builder.Build().Run();
