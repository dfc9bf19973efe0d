using System.Diagnostics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Keeps the traces a reader came for. A client span (a Valkey command, a SQL statement, an outgoing call) with no
/// parent was not caused by a request: it is a background loop's poll, claim, renewal, heartbeat or probe. Every
/// replica runs several such loops, which made hundreds of one-span traces a minute and buried the request a user had
/// just sent. Those are kept one in a hundred, so the loops stay visible; everything a request causes is kept (its
/// spans have the request as parent), and so is background work that opens an activity of its own for the work it does
/// (the analytics consumer does, per batch applied).
/// </summary>
public sealed class BackgroundNoiseSampler(double keepRatio = 0.01) : Sampler
{
    private readonly Sampler _background = new TraceIdRatioBasedSampler(keepRatio);
    private static readonly SamplingResult Keep = new(SamplingDecision.RecordAndSample);

    /// <summary>The sampler to set: this one for spans without a parent, the parent's decision for the others.</summary>
    public static Sampler ForServices() => new ParentBasedSampler(new BackgroundNoiseSampler());

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters) =>
        samplingParameters.Kind == ActivityKind.Client ? _background.ShouldSample(samplingParameters) : Keep;
}
