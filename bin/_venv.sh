# Sourced by bin/serve and bin/test: make .venv from the project's own files.
# Re-installs only when the requirements file it was built from has changed.
ensure_venv() {
    local requirements="$1"
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        echo "Python 3.11 or newer is needed (found: $("$python" --version 2>&1))." >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "Creating the virtual environment in .venv ..."
        "$python" -m venv .venv
        # pip itself pinned too: the two README commands install nothing unpinned.
        .venv/bin/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
    fi
    local stamp=".venv/.installed-$(basename "$requirements")"
    local digest
    digest=$(cat "$requirements" requirements.txt | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        echo "Installing $requirements ..."
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$digest" > "$stamp"
    fi
}
