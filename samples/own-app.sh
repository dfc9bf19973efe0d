#!/usr/bin/env bash
# Follows docs/own-app.md's "Try it" section as a reader would, from the repository root: each bash block runs as
# written, in order, in one shell (a later block uses an earlier one's folder and variables); the C# block becomes the
# new app's Program.cs, as the page says. Passes when the output ends with the lines the page's text block shows.
set -uo pipefail
cd "$(dirname "$0")/.."
page=docs/own-app.md
work="$(mktemp -d)"
script="$work/follow.sh"
out="$work/output.txt"

# The section, from its heading to the next one.
section=$(awk '/^## Try it/{on=1; next} on && /^## /{exit} on' "$page")
[ -n "$section" ] || { echo "own-app: FAILED: no 'Try it' section in $page"; exit 1; }

# Blocks in order: bash runs as it is, csharp is written to Program.cs where it stands, text is what must be printed.
{
  echo 'set -e'
  awk -v program_cs="$work/Program.cs" -v expected="$work/expected.txt" '
    /^```/ {
      if (!inside) { inside = 1; lang = substr($0, 4); next }
      inside = 0
      if (lang == "csharp") print "cp \"" program_cs "\" Program.cs"
      next
    }
    inside && lang == "bash" { print; next }
    inside && lang == "csharp" { print > program_cs; next }
    inside && lang == "text" { print > expected; next }
  ' <<<"$section"
} >"$script"
[ -s "$work/Program.cs" ] && [ -s "$work/expected.txt" ] || { echo "own-app: FAILED: the section lacks its Program.cs or its expected output"; exit 1; }

# The page starts a server and an app in the background; whatever it leaves running goes with this script.
cleanup() {
  pkill -f -- "--urls http://localhost:16590" 2>/dev/null
  "$(command -v valkey-cli || command -v redis-cli)" -p 16390 shutdown nosave >/dev/null 2>&1
  [ -n "${OWN_APP_KEEP:-}" ] && echo "work: $work" || rm -rf "$work"
}
trap cleanup EXIT

timeout 10m bash "$script" >"$out" 2>"$work/errors.txt"
status=$?
if [ "$status" -ne 0 ]; then
  echo "own-app: FAILED: the page's commands stopped with exit code $status"
  tail -n 30 "$work/errors.txt"; tail -n 10 "$out"
  exit 1
fi
# The last lines printed (build output comes before) are the reads the page promises.
if [ "$(tail -n "$(wc -l <"$work/expected.txt")" "$out" | tr -d '\r')" != "$(cat "$work/expected.txt")" ]; then
  echo "own-app: FAILED: expected the page's lines:"; cat "$work/expected.txt"; echo "but the output ended with:"; tail -n 5 "$out"
  exit 1
fi
echo "own-app: passed (docs/own-app.md followed as written: a new app on the packed package, a miss, then a hit from Valkey)"
