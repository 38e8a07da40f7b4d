#!/bin/sh
# Container entrypoint: `docker run ... regprune ARGS` runs `regprune ARGS` (the single-file
# bundle, dist/regprune.mjs), with --root defaulting to /var/lib/registry (REGPRUNE_ROOT).
#
# The one thing it adds: `--gc docker:CONTAINER` drives the host's Docker engine through its
# socket, which only exists here when mounted. Say so before regprune starts, not as a docker
# CLI error ("Cannot connect to the Docker daemon") from inside a run.
set -eu

bundle="${REGPRUNE_BUNDLE:-/opt/regprune/regprune.mjs}"
socket="${REGPRUNE_DOCKER_SOCKET:-/var/run/docker.sock}"

case "${1:-}" in
  # A shell for looking around: docker run --rm -it -v ...:/var/lib/registry regprune sh
  sh | bash) exec "$@" ;;
esac

# Does the command line ask for garbage-collect in a container? Only as the value of --gc, or as
# the MODE of `regprune gc`: elsewhere `docker:v1` is a tag (repository "docker", tag "v1").
wants_docker=no
command="${1:-}"
prev=
for arg in "$@"; do
  case "$prev|$arg" in
    --gc\|docker:*) wants_docker=yes ;;
  esac
  case "$arg" in
    --gc=docker:*) wants_docker=yes ;;
    docker:*) [ "$command" = gc ] && wants_docker=yes ;;
  esac
  prev="$arg"
done

if [ "$wants_docker" = yes ] && [ -z "${DOCKER_HOST:-}" ] && [ ! -S "$socket" ]; then
  echo "regprune: --gc docker:... needs the host's Docker socket, and $socket is not there" >&2
  echo "hint: add -v /var/run/docker.sock:/var/run/docker.sock to docker run (or set DOCKER_HOST)" >&2
  exit 2
fi

exec node "$bundle" "$@"
