#!/bin/sh
# The python tool's sandbox on Linux is bubblewrap (`bwrap`), a system package: install it when
# missing, so the tests run the sandbox's attack suite instead of skipping it. macOS has
# Seatbelt (sandbox-exec) built in: nothing to do there.
set -eu
[ "$(uname -s)" = Linux ] || exit 0
command -v bwrap >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap
elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y bubblewrap
elif command -v pacman >/dev/null 2>&1; then
    $SUDO pacman -S --noconfirm bubblewrap
elif command -v zypper >/dev/null 2>&1; then
    $SUDO zypper --non-interactive install bubblewrap
else
    echo "install-sandbox: install bubblewrap (bwrap) with your system's package manager" >&2
    exit 1
fi
