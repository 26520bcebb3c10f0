# Sourced, not run: Go tools built once from the Go module proxy and cached by version under
# ~/.cache/loopgate/go/NAME-VERSION/NAME (a new version is a new directory; nothing is rebuilt
# while it is there). Used by install-compose.sh, install-helm.sh, install-k8scheck.sh and install-jaeger.sh.
#   go_tool_module NAME MODULE VERSION PACKAGE [LDFLAGS]  a package of a published module
#   go_tool_local NAME DIR                                 a module of this repository (tools/...)
# Each prints the binary's path on stdout; progress goes to stderr.

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
GO_TOOLS_CACHE=${LOOPGATE_CACHE:-$HOME/.cache/loopgate}/go

go_tool_require() {
    [ -x "$GO" ] || command -v "$GO" >/dev/null || {
        echo "$1: need Go to build it (not found: $GO; set GO= or install Go in /usr/local/go)" >&2
        return 1
    }
}

# _go_tool_build NAME KEY SRC_DIR PACKAGE LDFLAGS: build into the cache, atomically, under a lock
# (two test runs may ask at once).
_go_tool_build() {
    local name=$1 key=$2 src=$3 pkg=$4 ldflags=$5
    local dir=$GO_TOOLS_CACHE/$name-$key out
    out=$dir/$name
    if [ -x "$out" ]; then echo "$out"; return 0; fi
    mkdir -p "$GO_TOOLS_CACHE"
    (
        flock 9
        if [ ! -x "$out" ]; then
            echo "$name: building $key from the Go module proxy (once)" >&2
            local tmp
            tmp=$(mktemp -d)
            trap 'rm -rf "$tmp"' EXIT
            cp -r "$src"/. "$tmp/src"
            chmod -R u+w "$tmp/src"
            (cd "$tmp/src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/$name" "$pkg") >&2
            mkdir -p "$dir"
            mv "$tmp/$name" "$out"
        fi
    ) 9>"$GO_TOOLS_CACHE/.$name.lock" || return 1
    echo "$out"
}

go_tool_module() {
    local name=$1 module=$2 version=$3 pkg=$4 ldflags=${5:-}
    local out=$GO_TOOLS_CACHE/$name-$version/$name
    if [ -x "$out" ]; then echo "$out"; return 0; fi
    go_tool_require "$name" || return 1
    local src
    # The module's own go.mod decides its dependencies (and its replace directives), as its release does.
    src=$("$GO" mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || return 1
    _go_tool_build "$name" "$version" "$src" "$pkg" "$ldflags"
}

go_tool_local() {
    local name=$1 dir=$2 key
    # Keyed by its sources and its go.sum: an edit builds a new binary.
    key=src-$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -c1-16)
    if [ -x "$GO_TOOLS_CACHE/$name-$key/$name" ]; then echo "$GO_TOOLS_CACHE/$name-$key/$name"; return 0; fi
    go_tool_require "$name" || return 1
    _go_tool_build "$name" "$key" "$dir" . ""
}
