#!/usr/bin/env bash
# Builds local stand-ins for the public images the AppHost runs in Containers mode, from Debian's packages, for a
# machine that can run a Docker engine but reach no image registry (docs/local-mode.md says what they can and cannot
# prove). The images keep the public ones' contracts: entrypoint behaviour, paths, user, environment and ports.
#   shopreference-standin/valkey:9.0    like valkey/valkey:9.0  (redis-server 7.0 as valkey-server, user valkey, /data, 6379)
#   shopreference-standin/postgres:18.3 like postgres:18.3      (PostgreSQL 15, user postgres, PGDATA under /var/lib/postgresql, 5432)
# Usage: bash tests/ContainerImages/build.sh   (root, debootstrap and a running Docker engine; skips images that exist)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
valkey_image=shopreference-standin/valkey:9.0
postgres_image=shopreference-standin/postgres:18.3
if docker image inspect "$valkey_image" >/dev/null 2>&1 && docker image inspect "$postgres_image" >/dev/null 2>&1; then
  echo "stand-in images present"; exit 0
fi

# The Debian mirror this machine's apt is set up with (debootstrap needs one; no host is written here).
mirror=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
            grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } | grep -v security | grep -m1 '/debian/\?$' || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")

work=$(mktemp -d /var/tmp/shopref-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
base="$work/base"
debootstrap --variant=minbase --include=redis-server,postgresql-15 "$suite" "$base" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
chroot "$base" apt-get clean
rm -rf "$base"/var/lib/apt/lists/* "$base"/etc/redis/redis.conf

# Each image: the shared root plus its user, entrypoint and metadata.
import() { # root image entrypoint-file changes...
  local root=$1 image=$2 entrypoint=$3; shift 3
  install -m 0755 "$here/$entrypoint" "$root/usr/local/bin/docker-entrypoint.sh"
  local changes=()
  for change in "$@"; do changes+=(--change "$change"); done
  tar -C "$root" -c . | docker import "${changes[@]}" - "$image" >/dev/null
  echo "built $image"
}

valkey="$work/valkey"; cp -a "$base" "$valkey"
chroot "$valkey" sh -c 'groupadd -r -g 999 valkey && useradd -r -g valkey -u 999 -d /data valkey && mkdir -p /data && chown valkey:valkey /data'
ln -s /usr/bin/redis-server "$valkey/usr/local/bin/valkey-server"
ln -s /usr/bin/redis-cli "$valkey/usr/local/bin/valkey-cli"
import "$valkey" "$valkey_image" valkey-entrypoint.sh \
  'WORKDIR /data' 'VOLUME /data' 'EXPOSE 6379' \
  'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["valkey-server"]'
rm -rf "$valkey"

postgres="$base"
chroot "$postgres" sh -c 'usermod -u 999 postgres && groupmod -g 999 postgres && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql'
import "$postgres" "$postgres_image" postgres-entrypoint.sh \
  'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  'ENV PGDATA=/var/lib/postgresql/15/docker' 'ENV LANG=C.UTF-8' \
  'VOLUME /var/lib/postgresql' 'EXPOSE 5432' \
  'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
