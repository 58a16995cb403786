#!/bin/sh
# Makes sure Graphviz's `dot` is on PATH: installs it with apt-get when this
# machine allows it (root on Debian/Ubuntu), otherwise says how to install it.
# Never fails: without dot, image rendering is skipped and .dot output still works.
command -v dot >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Graphviz's dot with apt-get ..."
    if apt-get update -qq >/dev/null && \
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; then
        exit 0
    fi
fi
cat <<'MSG'
Graphviz's `dot` is not installed, so graphs cannot be rendered to images
(rendering tests will be skipped; .dot output works without it). Install it with:
    Debian/Ubuntu: sudo apt-get install graphviz
    macOS:         brew install graphviz
    conda:         conda install -c conda-forge graphviz
MSG
exit 0
