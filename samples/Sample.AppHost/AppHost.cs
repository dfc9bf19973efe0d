var builder = DistributedApplication.CreateBuilder(args);

// The Valkey this sample uses is one you run (or a managed one), reached as a user that owns only `sample:*`
// (samples/README.md has the ACL line). Set it once: dotnet user-secrets set ConnectionStrings:valkey "host:port,user=sample,password=..."
var valkey = builder.AddConnectionString("valkey");

builder.AddProject<Projects.Sample_Api>("api")
    .WithReference(valkey);

builder.Build().Run();
