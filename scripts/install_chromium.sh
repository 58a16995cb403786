#!/bin/sh
# Makes sure headless Chromium and its WebDriver are on PATH for the explorer's browser
# tests: installs Debian's chromium and chromium-driver with apt-get when this machine
# allows it (root on Debian/Ubuntu), otherwise says how to install them.
# Never fails: without them, the browser tests are skipped.
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing chromium and chromium-driver with apt-get ..."
    if apt-get update -qq >/dev/null && \
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; then
        exit 0
    fi
fi
cat <<'MSG'
Chromium and chromedriver are not installed, so the explorer page's browser tests
will be skipped. Install them with:
    Debian/Ubuntu: sudo apt-get install chromium chromium-driver
and the Python driver with: pip install selenium (the test extra installs it)
MSG
exit 0
