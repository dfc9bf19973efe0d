namespace ShopReference.Shoppers;

/// <summary>
/// Product popularity as shops see it: a few products get most of the views (Zipf, s ≈ 1). Drawn from a precomputed
/// cumulative table by binary search, so a draw costs O(log n) and allocates nothing.
/// </summary>
public sealed class Zipf
{
    /// <summary>The most popular item.</summary>
    public const int Hottest = 1;

    private readonly double[] _cumulative;

    public Zipf(int items, double exponent = 1.07)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(items, 1);
        _cumulative = new double[items];
        var total = 0.0;
        for (var rank = 1; rank <= items; rank++)
        {
            total += 1 / Math.Pow(rank, exponent);
            _cumulative[rank - 1] = total;
        }
        for (var i = 0; i < items; i++)
        {
            _cumulative[i] /= total;
        }
    }

    /// <summary>An item from 1 to the number of items; 1 is the most popular.</summary>
    public int Next(Random random)
    {
        var index = Array.BinarySearch(_cumulative, random.NextDouble());
        return (index < 0 ? ~index : index) + 1;
    }
}
