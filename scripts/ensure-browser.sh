#!/usr/bin/env bash
# The browser tests need a real Chromium and its driver. Tools that download their own browser
# cannot work on these machines, so we use Debian's packages: installed here when missing and we
# are allowed to (root, or sudo without a password); otherwise say how, and let the tests fail
# with that reason rather than skip.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
install="apt-get install -y --no-install-recommends chromium chromium-driver"
if [ "$(id -u)" = 0 ]; then
  run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run="sudo -n"
else
  echo "ensure-browser: chromium and chromium-driver are missing; install them ($install) for the browser tests" >&2
  exit 0
fi
echo "ensure-browser: installing Debian's chromium and chromium-driver for the browser tests ..." >&2
DEBIAN_FRONTEND=noninteractive $run $install >/dev/null 2>&1 \
  || { $run apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $run $install >/dev/null 2>&1; } \
  || echo "ensure-browser: could not install chromium ($install); the browser tests will say so" >&2
exit 0
