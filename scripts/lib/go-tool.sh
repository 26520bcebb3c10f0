# Shared by the scripts that build a Go tool from the Go module proxy (install-compose.sh,
# install-jaeger.sh): find Go, and build a module's command once into a directory keyed by
# its version, so a second run costs nothing. Source it; it defines functions only.

# go_require TOOL: put Go on PATH (the machine's /usr/local/go when PATH lacks it) or fail loudly.
go_require() {
    if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH=/usr/local/go/bin:$PATH; fi
    command -v go >/dev/null || { echo "$1: need Go to build it from the Go module proxy" >&2; exit 1; }
}

# go_build_module TOOL MODULE VERSION PACKAGE OUT [LDFLAGS]: download MODULE@VERSION from the
# module proxy and build its PACKAGE (relative, e.g. ./cmd) to OUT, statically, in a scratch copy
# (the module cache is read-only). OUT is written last, atomically: a killed build leaves no binary.
go_build_module() {
    local tool=$1 module=$2 version=$3 package=$4 out=$5 ldflags=${6:-"-s -w"}
    go_require "$tool"
    echo "$tool: building $module $version from the Go module proxy (once)" >&2
    local src tmp
    src=$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    cp -r "$src"/. "$tmp"
    chmod -R u+w "$tmp"
    mkdir -p "$(dirname "$out")"
    (cd "$tmp" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.partial" "$package")
    mv "$out.partial" "$out"
}
