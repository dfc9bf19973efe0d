#!/usr/bin/env bash
# The sample's smoke test, as CI runs it: pack ShopReference.Valkey and ShopReference.Hosting into artifacts/packages,
# build the sample from that folder alone (no reference to the shop's projects), start a Valkey (redis-server where none
# is installed) whose only application user is the one in valkey-user.acl, run Sample.Api against it and check its
# promises from outside: miss then hit, 20 concurrent misses cost one origin load, not-found is cached, exactly the
# limit is admitted, every key is under sample:, and a stopped Valkey is a 503 ProblemDetails, not a hang. Then run
# Sample.AppHost (Local mode), whose Valkey and ACL user come from the hosting package, and read through it.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"; [ -n "${SMOKE_KEEP:-}" ] && echo "work: $work"
server_pid=""; api_pid=""; apphost_pid=""
cleanup() {
  [ -n "$apphost_pid" ] && kill "$apphost_pid" 2>/dev/null && wait "$apphost_pid" 2>/dev/null
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "${SMOKE_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "sample smoke: FAILED: $*"
  [ -f "$work/api.log" ] && tail -n 30 "$work/api.log"
  [ -f "$work/apphost.log" ] && tail -n 40 "$work/apphost.log"
  exit 1
}

# 1. The packages, and a build that can only have come from them.
if grep -n '<ProjectReference' samples/*/*.csproj | grep -v 'Include="\.\./Sample\.'; then fail "the sample references a project outside samples/"; fi
rm -rf artifacts/packages
for project in services/Valkey infra/Hosting; do
  dotnet pack "$project" -c Release -o artifacts/packages --nologo -v quiet >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; fail "dotnet pack $project"; }
done
# A package of the same version restored before would be taken from the cache instead of the one just packed.
rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/shopreference.valkey" "${NUGET_PACKAGES:-$HOME/.nuget/packages}/shopreference.hosting"
dotnet build samples/Sample.AppHost -c Release --nologo -v quiet >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; fail "dotnet build samples"; }
grep -q '"ShopReference.Valkey/1.0.0"' samples/Sample.Api/obj/project.assets.json || fail "ShopReference.Valkey was not restored as a package"
grep -q '"ShopReference.Hosting/1.0.0"' samples/Sample.AppHost/obj/project.assets.json || fail "ShopReference.Hosting was not restored as a package"

# 2. A Valkey with an administrator (for this script's checks only) and the sample's user, from valkey-user.acl.
server=$(command -v valkey-server || command -v redis-server) || fail "no valkey-server or redis-server"
cli=$(command -v valkey-cli || command -v redis-cli) || fail "no valkey-cli or redis-cli"
# Ports from 17000-19999: below the ephemeral range, and apart from the bands the test suite and Aspire pick from.
free_port() { local p; for _ in $(seq 50); do p=$((17000 + RANDOM % 3000)); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; return 1; }
valkey_port=$(free_port); api_port=$(free_port); while [ "$api_port" = "$valkey_port" ]; do api_port=$(free_port); done
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+='); sample_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
{ echo "user default on >$admin_password ~* &* +@all"; sed "s/SAMPLE_PASSWORD/$sample_password/" samples/valkey-user.acl; } >"$work/users.acl"
"$server" --bind 127.0.0.1 --port "$valkey_port" --save '' --appendonly no --aclfile "$work/users.acl" >"$work/valkey.log" 2>&1 &
server_pid=$!
admin() { "$cli" -h 127.0.0.1 -p "$valkey_port" --user default --pass "$admin_password" --no-auth-warning "$@"; }
for _ in $(seq 100); do [ "$(admin ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
[ "$(admin ping 2>/dev/null)" = PONG ] || { cat "$work/valkey.log"; fail "Valkey did not start"; }

# 3. The service, as the sample user, with a limit of 30 reads a minute and a 300 ms origin.
ConnectionStrings__valkey="127.0.0.1:$valkey_port,user=sample,password=$sample_password" Sample__ReadsPerMinute=30 \
  Sample__OriginLatency=00:00:00.300 ASPNETCORE_URLS="http://127.0.0.1:$api_port" \
  dotnet samples/Sample.Api/bin/Release/net10.0/Sample.Api.dll >"$work/api.log" 2>&1 &
api_pid=$!
base="http://127.0.0.1:$api_port"
for _ in $(seq 300); do curl -fs "$base/stats" >/dev/null 2>&1 && break; sleep 0.2; done
loads() { curl -fs -m 10 "$base/stats" | grep -o '"originLoads":[0-9]*' | cut -d: -f2; }
[ "$(loads)" = 0 ] || fail "the service did not start"
read_product() { curl -s -m 20 -o /dev/null -D - "$base/products/$1" | tr -d '\r'; } # headers only
status_of() { head -n 1 | cut -d' ' -f2; }
outcome_of() { sed -n 's/^X-Cache: //Ip'; }

first=$(read_product 1); second=$(read_product 1)
[ "$(status_of <<<"$first")" = 200 ] && [ "$(outcome_of <<<"$first")" = Miss ] || fail "first read: $first"
[ "$(outcome_of <<<"$second")" = Hit ] || fail "second read: $second"
[ "$(loads)" = 1 ] || fail "a miss and a hit cost $(loads) origin loads, not 1"

herd=()
for i in $(seq 20); do read_product 2 >"$work/herd.$i" & herd+=($!); done
wait "${herd[@]}" # not a bare wait: that would wait for the server and the service too
[ "$(cat "$work"/herd.* | grep -c '^HTTP/1.1 200')" = 20 ] || fail "20 concurrent reads did not all succeed"
[ "$(loads)" = 2 ] || fail "20 concurrent misses cost $(( $(loads) - 1 )) origin loads, not 1"

[ "$(read_product 5000 | status_of)" = 404 ] && [ "$(read_product 5000 | status_of)" = 404 ] || fail "an unknown product is not 404"
[ "$(loads)" = 3 ] || fail "two reads of an unknown product cost $(( $(loads) - 2 )) origin loads, not 1"

# 24 reads so far; 10 more: exactly 6 admitted, then 429 with Retry-After.
admitted=0; limited=0
for _ in $(seq 10); do
  answer=$(read_product 1)
  case "$(status_of <<<"$answer")" in
    200) admitted=$((admitted + 1)) ;;
    429) grep -qi '^Retry-After: [1-9]' <<<"$answer" || fail "a 429 without Retry-After: $answer"; limited=$((limited + 1)) ;;
    *) fail "unexpected answer: $answer" ;;
  esac
done
[ "$admitted" = 6 ] && [ "$limited" = 4 ] || fail "the limit of 30 admitted $((24 + admitted)) reads ($limited refused)"

others=$(admin --scan | grep -v '^sample:' || true)
[ -z "$others" ] || fail "keys outside sample:* were written: $others"

# 4. Valkey stops: a 503 ProblemDetails at once, not a hang.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
outage=$(curl -s -m 15 -D - "$base/products/3" | tr -d '\r') || fail "a read while Valkey is down did not answer within 15 s"
[ "$(status_of <<<"$outage")" = 503 ] && grep -qi '^Content-Type: application/problem+json' <<<"$outage" || fail "a read while Valkey is down: $outage"

kill "$api_pid" 2>/dev/null; wait "$api_pid" 2>/dev/null || true; api_pid=""

# 5. The sample's AppHost in Local mode: the hosting package starts Valkey with the sample's ACL user and hands the API
#    that user's connection string. A read through it is a miss then a hit, its keys are under sample:, and the user
#    the package created reaches nothing else.
valkey_port=$(free_port); api_port=$(free_port); dashboard_port=$(free_port); otlp_port=$(free_port); resources_port=$(free_port)
env ASPIRE_ALLOW_UNSECURED_TRANSPORT=true ASPNETCORE_URLS="http://127.0.0.1:$dashboard_port" \
  ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL="http://127.0.0.1:$otlp_port" ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL="http://127.0.0.1:$resources_port" \
  Infrastructure__Mode=Local Infrastructure__DataDirectory="$work/data" "Parameters__valkey-password=$admin_password" \
  Sample__ValkeyPort="$valkey_port" Sample__ApiPort="$api_port" \
  dotnet run --project samples/Sample.AppHost -c Release --no-build --no-launch-profile >"$work/apphost.log" 2>&1 &
apphost_pid=$!
base="http://127.0.0.1:$api_port"
for _ in $(seq 600); do curl -fs -m 2 "$base/stats" >/dev/null 2>&1 && break; kill -0 "$apphost_pid" 2>/dev/null || break; sleep 0.3; done
[ "$(loads)" = 0 ] || fail "the AppHost's API did not answer within 3 minutes"
first=$(read_product 7); second=$(read_product 7)
[ "$(status_of <<<"$first")" = 200 ] && [ "$(outcome_of <<<"$first")" = Miss ] || fail "first read through the AppHost: $first"
[ "$(outcome_of <<<"$second")" = Hit ] || fail "second read through the AppHost: $second"
others=$(admin --scan | grep -v '^sample:' || true)
[ -z "$others" ] || fail "keys outside sample:* were written through the AppHost: $others"
[ "$(admin --scan | grep -c '^sample:')" -gt 0 ] || fail "the AppHost's Valkey holds no sample key"
acl=$(admin acl getuser sample | tr '\n' ' ')
grep -q '~sample:\*' <<<"$acl" && grep -q '&sample:\*' <<<"$acl" || fail "the hosting package's user 'sample' is not limited to sample:*: $acl"
kill "$apphost_pid"; wait "$apphost_pid" 2>/dev/null || true; apphost_pid=""

echo "sample smoke: passed (miss then hit; 20 concurrent misses, 1 origin load; not-found cached; 30 of 34 reads admitted; keys only under sample:; Valkey down is a 503; the AppHost from the hosting package serves a miss then a hit as its own ACL user)"
