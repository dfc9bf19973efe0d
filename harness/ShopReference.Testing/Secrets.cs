using System.Security.Cryptography;

namespace ShopReference.Testing;

public static class Secrets
{
    /// <summary>A random password of letters and digits, like the AppHost's generated parameters.</summary>
    public static string NewPassword(int length = 24) =>
        RandomNumberGenerator.GetString("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", length);
}
