#!/bin/sh
# The stand-in's entrypoint, with the behaviour the public valkey/valkey image documents: options or a .conf file as
# the first argument run the server; started as root, the server gives /data to the 'valkey' user and drops to it;
# VALKEY_EXTRA_FLAGS are appended to the server's arguments; files it creates are private (umask 0077).
set -e
case "$1" in
  -*|*.conf) set -- valkey-server "$@" ;;
esac
if [ "$1" = valkey-server ] && [ "$(id -u)" = 0 ]; then
  find . ! -user valkey -exec chown valkey '{}' +
  exec setpriv --reuid=valkey --regid=valkey --clear-groups -- "$0" "$@"
fi
[ "$(umask)" = 0022 ] && umask 0077
if [ "$1" = valkey-server ] && [ -n "${VALKEY_EXTRA_FLAGS:-}" ]; then
  # shellcheck disable=SC2086 # the flags are words on purpose
  set -- "$@" $VALKEY_EXTRA_FLAGS
fi
exec "$@"
