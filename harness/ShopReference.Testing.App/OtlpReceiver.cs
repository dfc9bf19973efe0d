using System.Collections.Concurrent;
using System.Net;
using Google.Protobuf;
using ShopReference.Hosting;

namespace ShopReference.Testing;

/// <summary>One exported span: its trace, whether it is a trace's root, its name, and the service that sent it.</summary>
public sealed record ExportedSpan(string TraceId, bool IsRoot, string Name, string Service, DateTime Start, DateTime Received);

/// <summary>
/// What the services export over OTLP/HTTP (protobuf), received in the test process instead of the dashboard: the
/// test app points every service's <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> here, so a test counts the traces a user would
/// find on the dashboard's Traces page. Spans are decoded from <c>ExportTraceServiceRequest</c> with the protobuf
/// runtime's reader (only the fields used here); metrics and logs are acknowledged, and a metrics export is recorded
/// per service instance, which shows that instance's exporters have flushed up to then.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentQueue<ExportedSpan> _spans = new();
    private readonly ConcurrentDictionary<string, DateTime> _lastMetrics = new(StringComparer.Ordinal);
    private readonly Task _serving;

    public OtlpReceiver()
    {
        Port = LocalPorts.NextFree();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _serving = Task.Run(ServeAsync);
    }

    public int Port { get; }
    public Uri Endpoint => new($"http://127.0.0.1:{Port}");

    public IReadOnlyCollection<ExportedSpan> Spans => _spans;

    /// <summary>When each service instance (<c>service.name/service.instance.id</c>) last exported metrics.</summary>
    public IReadOnlyDictionary<string, DateTime> LastMetricsExport => _lastMetrics;

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
            {
                return;
            }
            try
            {
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                var received = DateTime.UtcNow;
                switch (context.Request.Url?.AbsolutePath)
                {
                    case "/v1/traces":
                        foreach (var span in Traces(body.ToArray(), received)) _spans.Enqueue(span);
                        break;
                    case "/v1/metrics":
                        foreach (var instance in MetricSources(body.ToArray())) _lastMetrics[instance] = received;
                        break;
                }
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
            }
            catch (InvalidProtocolBufferException)
            {
                context.Response.StatusCode = 400;
            }
            context.Response.Close();
        }
    }

    // ExportTraceServiceRequest: 1 resource_spans { 1 resource, 2 scope_spans { 2 spans { 1 trace_id, 4 parent_span_id, 5 name, 7 start_time_unix_nano } } }
    private static IEnumerable<ExportedSpan> Traces(byte[] request, DateTime received)
    {
        var spans = new List<ExportedSpan>();
        foreach (var resourceSpans in Fields(request, 1))
        {
            var service = Service(Fields(resourceSpans, 1).FirstOrDefault());
            foreach (var scopeSpans in Fields(resourceSpans, 2))
            {
                foreach (var span in Fields(scopeSpans, 2))
                {
                    string traceId = "", name = "";
                    var isRoot = true;
                    var start = DateTime.MinValue;
                    var input = new CodedInputStream(span);
                    for (uint tag; (tag = input.ReadTag()) != 0;)
                    {
                        switch (WireFormat.GetTagFieldNumber(tag))
                        {
                            case 1: traceId = Convert.ToHexStringLower(input.ReadBytes().ToByteArray()); break;
                            case 4: isRoot = input.ReadBytes().Length == 0; break;
                            case 5: name = input.ReadString(); break;
                            case 7: start = DateTime.UnixEpoch.AddTicks((long)(input.ReadFixed64() / 100)); break;
                            default: input.SkipLastField(); break;
                        }
                    }
                    spans.Add(new ExportedSpan(traceId, isRoot, name, service.Name, start, received));
                }
            }
        }
        return spans;
    }

    // ExportMetricsServiceRequest: 1 resource_metrics { 1 resource }.
    private static IEnumerable<string> MetricSources(byte[] request) =>
        Fields(request, 1).Select(resourceMetrics => Service(Fields(resourceMetrics, 1).FirstOrDefault()))
            .Select(service => $"{service.Name}/{service.Instance}").ToList();

    // Resource: 1 attributes { 1 key, 2 value { 1 string_value } }.
    private static (string Name, string Instance) Service(byte[]? resource)
    {
        string name = "", instance = "";
        foreach (var attribute in resource is null ? [] : Fields(resource, 1))
        {
            var key = Fields(attribute, 1).Select(System.Text.Encoding.UTF8.GetString).FirstOrDefault();
            var value = Fields(attribute, 2).SelectMany(v => Fields(v, 1)).Select(System.Text.Encoding.UTF8.GetString).FirstOrDefault() ?? "";
            if (key == "service.name") name = value;
            if (key == "service.instance.id") instance = value;
        }
        return (name, instance);
    }

    // The payloads of every length-delimited field with this number.
    private static List<byte[]> Fields(byte[] message, int number)
    {
        var found = new List<byte[]>();
        var input = new CodedInputStream(message);
        for (uint tag; (tag = input.ReadTag()) != 0;)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                found.Add(input.ReadBytes().ToByteArray());
            }
            else
            {
                input.SkipLastField();
            }
        }
        return found;
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        await _serving;
    }
}
