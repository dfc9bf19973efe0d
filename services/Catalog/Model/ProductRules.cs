namespace ShopReference.Catalog.Model;

/// <summary>Input rules for the catalog API: bad input is a 400 with every problem listed, and nothing is written.</summary>
public static class ProductRules
{
    public const int MaxNameLength = 200;
    public const int MaxDescriptionLength = 2_000;
    public const int MaxCategoryLength = 50;
    public const decimal MaxPrice = 1_000_000m;
    public const int MaxPageSize = 100;

    /// <summary>Ids are positive 64-bit integers written in digits; anything else never reaches a query or a key.</summary>
    public static bool TryParseId(string? text, out long id) =>
        long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out id) && id > 0;

    /// <summary>
    /// Text fit to store: no control characters (PostgreSQL refuses a NUL outright, and the others have no place in a
    /// name); a description may hold line breaks and tabs.
    /// </summary>
    public static bool IsCleanText(string? text, bool multiline = false) =>
        text is not null && !text.Any(c => char.IsControl(c) && !(multiline && c is '\n' or '\r' or '\t'));

    public static Dictionary<string, string[]> Validate(ProductUpdate? update)
    {
        var errors = new Dictionary<string, string[]>();
        if (update is null)
        {
            errors["body"] = ["A JSON body with name, description, category, price and stock is required."];
            return errors;
        }
        if (string.IsNullOrWhiteSpace(update.Name) || update.Name.Length > MaxNameLength || !IsCleanText(update.Name))
            errors["name"] = [$"Required, at most {MaxNameLength} characters, no control characters."];
        if (update.Description is null || update.Description.Length > MaxDescriptionLength || !IsCleanText(update.Description, multiline: true))
            errors["description"] = [$"Required (may be empty), at most {MaxDescriptionLength} characters, no control characters but line breaks and tabs."];
        if (string.IsNullOrWhiteSpace(update.Category) || update.Category.Length > MaxCategoryLength || !IsCleanText(update.Category))
            errors["category"] = [$"Required, at most {MaxCategoryLength} characters, no control characters."];
        if (update.Price is not { } price || price < 0 || price > MaxPrice || decimal.Round(price, 2) != price)
            errors["price"] = [$"Required, 0 to {MaxPrice}, at most two decimals."];
        if (update.Stock is not { } stock || stock < 0)
            errors["stock"] = ["Required, 0 or more."];
        return errors;
    }
}
