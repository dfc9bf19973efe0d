namespace ShopReference.EndToEndTests;

// Every collection of this suite, in one place. The one shared app ("app") serves the classes that can share it; the
// others run alone, each on an app of its own, because they change what the shared app's tests read or would starve
// them on CI's two cores.

[CollectionDefinition(Name)]
public sealed class ShopAppCollection : ICollectionFixture<ShopAppFixture>
{
    public const string Name = "app";
}

// Alone: it starts the AppHost as a process of its own and stops it as a user would.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CtrlCCollection
{
    public const string Name = "ctrl-c";
}

// Runs alone: a second whole app beside the shared one starved the others on CI's two cores (a start took over 6 min).
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DocCommandsCollection : ICollectionFixture<ShopAppFixture>
{
    public const string Name = "doc commands";
}

// Alone: a browser and a second app beside the shared one would starve the 2-core machine.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DashboardCollection : ICollectionFixture<DashboardAppFixture>
{
    public const string Name = "dashboard";
}

// Alone, on an app of its own: a minute of shoppers moves every count the shared app's tests read.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ShopperSimulationCollection : ICollectionFixture<ShopAppFixture>
{
    public const string Name = "shoppers";
}

// Runs alone, on an app of its own: it kills a replica, which the shared app's other tests must not see.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ReplicaLossCollection : ICollectionFixture<ShopAppFixture>
{
    public const string Name = "replica loss";
}
