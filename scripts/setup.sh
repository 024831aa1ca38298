#!/usr/bin/env bash
# Installs what mediafs and its tests need on a fresh Debian machine:
# fuse3 (fusermount3 and the kernel device's tools), rsync, attr (getfattr),
# curl, vim, perl, python3, gio (libglib2.0-bin), fsx, and for the Debian
# package cargo-deb and dpkg-dev (whose dpkg-shlibdeps finds the package's
# library dependencies). Safe to run again; does nothing when all are present.
set -euo pipefail
need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v rsync >/dev/null || need+=(rsync)
command -v getfattr >/dev/null || need+=(attr)
command -v curl >/dev/null || need+=(curl)
# The everyday-tools tests drive editors and scripts through the mount.
command -v vim >/dev/null || need+=(vim)
command -v perl >/dev/null || need+=(perl)
command -v python3 >/dev/null || need+=(python3)
command -v gio >/dev/null || need+=(libglib2.0-bin)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
# fsx (crates.io) exercises a file through the mount in the reliability tests.
command -v fsx >/dev/null || cargo install --quiet --locked fsx@0.3.2
# cargo-deb (crates.io) builds the package that tests/package.rs installs.
command -v cargo-deb >/dev/null || cargo install --quiet --locked cargo-deb@3.8.0
if [ ! -e /dev/fuse ]; then
  echo "setup: /dev/fuse is missing; load the fuse kernel module (modprobe fuse)" >&2
  exit 1
fi
